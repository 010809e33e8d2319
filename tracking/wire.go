package tracking

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/msgtrack/msgtrack/trackstore"
)

// Layout constants. See the package documentation, "Storage layout".
const (
	// ShardCount is the number of recipient shard slots of every sharded
	// record (format versions 1 and 2). It is part of the format: every MTA of a
	// deployment must agree on it, because an event finds the shard of a
	// recipient from the address alone, without reading the head.
	ShardCount = 16
	// FormatVersion is the version byte this package writes (heads and
	// shards). Version 2 is a compact tagged binary encoding and lets
	// small records keep their recipients in the head; version 1 (JSON,
	// recipients always in shards) is still read. See the package
	// documentation, "Storage layout".
	FormatVersion = 2
	// InlineRecipients is the most recipients a record keeps in its head
	// item (format version 2), so that a query or an event costs one
	// store round trip. A record created with more, or that grows past it
	// (a later hop, an expansion), puts its further recipients in shards;
	// recipients never move between items.
	InlineRecipients = 16
	// MaxAppliedEvents bounds the event IDs remembered per item (head or
	// shard) for idempotency. Older IDs are forgotten first; events that
	// old are still harmless because state transitions never regress.
	MaxAppliedEvents = 128

	headNamespace = "mt"
)

// Item header: two magic bytes, a kind byte and a version byte.
const (
	magic0    = 'M'
	magic1    = 'T'
	kindHead  = 'H'
	kindShard = 'S'
	hdrLen    = 4
)

// HeadKey returns the store key of the head item of the record for cert:
// trackstore.SafeKey("mt", cert bytes).
func HeadKey(cert []byte) string { return trackstore.SafeKey(headNamespace, string(cert)) }

// ShardKey returns the store key of recipient shard i (0 to ShardCount-1)
// of the record for cert: trackstore.SafeKey("mts" + hex digit of i, cert
// bytes), a namespace per shard so that the key stays within every
// backend's key rules whatever the certifier's length.
func ShardKey(cert []byte, i int) string {
	return trackstore.SafeKey("mts"+strconv.FormatInt(int64(i), 16), string(cert))
}

// ShardOf returns the shard slot of a recipient address: FNV-1a (32 bit) of
// the address bytes, modulo ShardCount. It must be stable across processes
// and versions, so it is not a seeded hash.
func ShardOf(addr string) int {
	h := fnv.New32a()
	h.Write([]byte(addr))
	return int(h.Sum32() % ShardCount)
}

// wireHop is one MTA's acceptance of the message.
type wireHop struct {
	MTA      string `json:"m"`
	Queue    string `json:"q,omitempty"`
	Arrival  int64  `json:"a"`
	Internal bool   `json:"i,omitempty"`
}

// wireHead is the per-message item.
type wireHead struct {
	Cert       []byte    `json:"c"`
	EnvID      string    `json:"id"`
	Timeout    int64     `json:"t"`
	Expires    int64     `json:"x"`
	Sender     string    `json:"s,omitempty"`
	Arrival    int64     `json:"ad"`
	MTA        string    `json:"m"`
	HoldUntil  int64     `json:"hu,omitempty"`
	Held       bool      `json:"h,omitempty"`
	Recall     int64     `json:"rc,omitempty"`
	Hops       []wireHop `json:"hp,omitempty"`
	ShardMask  uint32    `json:"sm"`
	ShardCount int       `json:"ns"`
	Events     []string  `json:"e,omitempty"`
	Writer     uint64    `json:"w,omitempty"`
	// Version 2 only: recipients kept in the head, and whether the record
	// has (or may have) shards. A record that is not sharded has all its
	// recipients inline; once sharded, no recipient is added inline.
	Rcpts   []wireRcpt `json:"-"`
	Sharded bool       `json:"-"`
}

func (h *wireHead) find(addr string) int {
	for i := range h.Rcpts {
		if h.Rcpts[i].Final == addr {
			return i
		}
	}
	return -1
}

// hopIndex returns the index of the hop that queue of mta recorded, or -1.
// A hop is recorded once, so the first match is the only one.
func (h *wireHead) hopIndex(mta, queue string) int {
	for i, hp := range h.Hops {
		if hp.MTA == mta && hp.Queue == queue {
			return i
		}
	}
	return -1
}

// wireRcpt is one recipient inside a shard.
type wireRcpt struct {
	Orig        string   `json:"o,omitempty"`
	Final       string   `json:"f"`
	Action      Action   `json:"a"`
	Status      string   `json:"s,omitempty"`
	RemoteMTA   string   `json:"r,omitempty"`
	LastAttempt int64    `json:"l,omitempty"`
	RetryUntil  int64    `json:"w,omitempty"`
	NextAttempt int64    `json:"n,omitempty"`
	Diag        string   `json:"d,omitempty"`
	Internal    bool     `json:"i,omitempty"`
	Parent      string   `json:"p,omitempty"`
	Children    []string `json:"c,omitempty"`
	Untracked   []string `json:"u,omitempty"`
	List        bool     `json:"ls,omitempty"`
	OwnerMTA    string   `json:"om,omitempty"`
	Queue       string   `json:"q,omitempty"`
	Hop         int      `json:"h,omitempty"`
	RecallReq   int64    `json:"rr,omitempty"`
}

// wireShard is one recipient shard item.
type wireShard struct {
	Cert    []byte     `json:"c"`
	N       int        `json:"n"`
	Expires int64      `json:"x"`
	Rcpts   []wireRcpt `json:"r"`
	Events  []string   `json:"e,omitempty"`
	Writer  uint64     `json:"w,omitempty"`
}

func (s *wireShard) find(addr string) int {
	for i := range s.Rcpts {
		if s.Rcpts[i].Final == addr {
			return i
		}
	}
	return -1
}

// encodeItem encodes a head (*wireHead) or shard (*wireShard) in the
// current format (FormatVersion). kind must match v's type.
func encodeItem(kind byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case *wireHead:
		if kind != kindHead {
			break
		}
		return encodeHead(x), nil
	case *wireShard:
		if kind != kindShard {
			break
		}
		return encodeShard(x), nil
	}
	return nil, fmt.Errorf("tracking: encoding record: %T is not an item of kind %q", v, kind)
}

// Version 2 encoding. After the 4-byte header, a sequence of fields, each
// a uvarint tag (field number << 1 | wire type) and a value: wire type 0
// is a uvarint (signed numbers zigzag-encoded), wire type 1 a uvarint
// length and that many bytes (a string, or a nested message for hops and
// recipients). Repeated fields repeat the tag. Zero values are left out.
// Readers skip fields they do not know, so a later version can add fields
// and still be read by this one.
const (
	wtVarint = 0
	wtBytes  = 1
)

// Field numbers, per message.
const (
	// head
	fhCert, fhEnvID, fhTimeout, fhExpires, fhSender, fhArrival, fhMTA = 1, 2, 3, 4, 5, 6, 7
	fhHoldUntil, fhHeld, fhRecall, fhHop, fhShardMask, fhShardCount   = 8, 9, 10, 11, 12, 13
	fhEvent, fhWriter, fhRcpt, fhSharded                              = 14, 15, 16, 17
	// hop
	fpMTA, fpQueue, fpArrival, fpInternal = 1, 2, 3, 4
	// recipient
	frOrig, frFinal, frAction, frStatus, frRemote, frLast, frRetryUntil, frNext  = 1, 2, 3, 4, 5, 6, 7, 8
	frDiag, frInternal, frParent, frChild, frUntracked, frList, frOwner, frQueue = 9, 10, 11, 12, 13, 14, 15, 16
	frHop, frRecallReq                                                           = 17, 18
	// shard
	fsCert, fsN, fsExpires, fsRcpt, fsEvent, fsWriter = 1, 2, 3, 4, 5, 6
)

type enc struct{ b []byte }

func (e *enc) uvarint(f int, v uint64) {
	if v == 0 {
		return
	}
	e.b = binary.AppendUvarint(e.b, uint64(f)<<1|wtVarint)
	e.b = binary.AppendUvarint(e.b, v)
}

func (e *enc) int(f int, v int64) { e.uvarint(f, uint64(v<<1)^uint64(v>>63)) }

func (e *enc) bool(f int, v bool) {
	if v {
		e.uvarint(f, 1)
	}
}

func (e *enc) str(f int, s string) {
	if s == "" {
		return
	}
	e.b = binary.AppendUvarint(e.b, uint64(f)<<1|wtBytes)
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *enc) bytes(f int, s []byte) {
	if len(s) == 0 {
		return
	}
	e.b = binary.AppendUvarint(e.b, uint64(f)<<1|wtBytes)
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

// nested appends field f holding the message that body appends.
func (e *enc) nested(f int, body func(*enc)) {
	e.b = binary.AppendUvarint(e.b, uint64(f)<<1|wtBytes)
	// Reserve one length byte; move the body if it needs more.
	at := len(e.b)
	e.b = append(e.b, 0)
	body(e)
	n := len(e.b) - at - 1
	if n < 0x80 {
		e.b[at] = byte(n)
		return
	}
	var l [binary.MaxVarintLen64]byte
	ln := binary.PutUvarint(l[:], uint64(n))
	e.b = append(e.b, l[:ln-1]...)
	copy(e.b[at+ln:], e.b[at+1:at+1+n])
	copy(e.b[at:], l[:ln])
}

func (e *enc) rcpt(r *wireRcpt) {
	e.str(frOrig, r.Orig)
	e.str(frFinal, r.Final)
	e.str(frAction, string(r.Action))
	e.str(frStatus, r.Status)
	e.str(frRemote, r.RemoteMTA)
	e.int(frLast, r.LastAttempt)
	e.int(frRetryUntil, r.RetryUntil)
	e.int(frNext, r.NextAttempt)
	e.str(frDiag, r.Diag)
	e.bool(frInternal, r.Internal)
	e.str(frParent, r.Parent)
	for _, c := range r.Children {
		e.str(frChild, c)
	}
	for _, c := range r.Untracked {
		e.str(frUntracked, c)
	}
	e.bool(frList, r.List)
	e.str(frOwner, r.OwnerMTA)
	e.str(frQueue, r.Queue)
	e.int(frHop, int64(r.Hop))
	e.int(frRecallReq, r.RecallReq)
}

func rcptsSize(rs []wireRcpt) int {
	n := 0
	for i := range rs {
		r := &rs[i]
		n += 40 + len(r.Orig) + len(r.Final) + len(r.Action) + len(r.Status) + len(r.RemoteMTA) + len(r.Diag) +
			len(r.Parent) + len(r.OwnerMTA) + len(r.Queue)
		for _, c := range r.Children {
			n += 3 + len(c)
		}
		for _, c := range r.Untracked {
			n += 3 + len(c)
		}
	}
	return n
}

func eventsSize(ev []string) int {
	n := 0
	for _, s := range ev {
		n += 2 + len(s)
	}
	return n
}

func encodeHead(h *wireHead) []byte {
	e := enc{b: make([]byte, 0, 128+len(h.Cert)+len(h.EnvID)+len(h.Sender)+64*len(h.Hops)+eventsSize(h.Events)+rcptsSize(h.Rcpts))}
	e.b = append(e.b, magic0, magic1, kindHead, FormatVersion)
	e.bytes(fhCert, h.Cert)
	e.str(fhEnvID, h.EnvID)
	e.int(fhTimeout, h.Timeout)
	e.int(fhExpires, h.Expires)
	e.str(fhSender, h.Sender)
	e.int(fhArrival, h.Arrival)
	e.str(fhMTA, h.MTA)
	e.int(fhHoldUntil, h.HoldUntil)
	e.bool(fhHeld, h.Held)
	e.int(fhRecall, h.Recall)
	for i := range h.Hops {
		hp := &h.Hops[i]
		e.nested(fhHop, func(e *enc) {
			e.str(fpMTA, hp.MTA)
			e.str(fpQueue, hp.Queue)
			e.int(fpArrival, hp.Arrival)
			e.bool(fpInternal, hp.Internal)
		})
	}
	e.uvarint(fhShardMask, uint64(h.ShardMask))
	e.int(fhShardCount, int64(h.ShardCount))
	for _, id := range h.Events {
		e.str(fhEvent, id)
	}
	e.uvarint(fhWriter, h.Writer)
	for i := range h.Rcpts {
		e.nested(fhRcpt, func(e *enc) { e.rcpt(&h.Rcpts[i]) })
	}
	e.bool(fhSharded, h.Sharded)
	return e.b
}

func encodeShard(s *wireShard) []byte {
	e := enc{b: make([]byte, 0, 64+len(s.Cert)+eventsSize(s.Events)+rcptsSize(s.Rcpts))}
	e.b = append(e.b, magic0, magic1, kindShard, FormatVersion)
	e.bytes(fsCert, s.Cert)
	e.int(fsN, int64(s.N))
	e.int(fsExpires, s.Expires)
	for i := range s.Rcpts {
		e.nested(fsRcpt, func(e *enc) { e.rcpt(&s.Rcpts[i]) })
	}
	for _, id := range s.Events {
		e.str(fsEvent, id)
	}
	e.uvarint(fsWriter, s.Writer)
	return e.b
}

// dec reads version 2 fields from a string (the whole item converted
// once, so that decoded strings share its memory instead of being
// allocated one by one).
type dec struct {
	s   string
	i   int
	err error
}

func (d *dec) more() bool { return d.err == nil && d.i < len(d.s) }

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d", trackstore.ErrCorrupt, what, d.i)
	}
}

func (d *dec) uvarint() uint64 {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if d.i >= len(d.s) {
			d.fail("truncated number")
			return 0
		}
		c := d.s[d.i]
		d.i++
		if c < 0x80 {
			if shift == 63 && c > 1 {
				d.fail("number overflows")
				return 0
			}
			return v | uint64(c)<<shift
		}
		v |= uint64(c&0x7f) << shift
	}
	d.fail("number overflows")
	return 0
}

// field reads a tag; it returns the field number and wire type.
func (d *dec) field() (int, int) {
	t := d.uvarint()
	if t>>1 > 1<<20 {
		d.fail("field number out of range")
		return 0, 0
	}
	return int(t >> 1), int(t & 1)
}

// value reads the value of a field of wire type wt: a number, or a
// string.
func (d *dec) value(wt int) (uint64, string) {
	if wt == wtVarint {
		return d.uvarint(), ""
	}
	n := d.uvarint()
	if d.err != nil {
		return 0, ""
	}
	if n > uint64(len(d.s)-d.i) {
		d.fail("truncated field")
		return 0, ""
	}
	v := d.s[d.i : d.i+int(n)]
	d.i += int(n)
	return 0, v
}

func unzig(v uint64) int64 { return int64(v>>1) ^ -int64(v&1) }

// want checks a known field's wire type.
func (d *dec) want(wt, expect int) bool {
	if wt != expect {
		d.fail("field of the wrong type")
		return false
	}
	return true
}

// countField counts occurrences of field f (wire type bytes) at the top
// level, to size slices before decoding.
func countField(s string, f int) int {
	d := dec{s: s}
	n := 0
	for d.more() {
		num, wt := d.field()
		d.value(wt)
		if num == f && wt == wtBytes {
			n++
		}
	}
	return n
}

func decodeRcpt(s string, r *wireRcpt) error {
	d := dec{s: s}
	for d.more() {
		f, wt := d.field()
		n, v := d.value(wt)
		if d.err != nil {
			break
		}
		switch f {
		case frOrig:
			r.Orig = v
		case frFinal:
			r.Final = v
		case frAction:
			r.Action = Action(v)
		case frStatus:
			r.Status = v
		case frRemote:
			r.RemoteMTA = v
		case frLast:
			r.LastAttempt = unzig(n)
		case frRetryUntil:
			r.RetryUntil = unzig(n)
		case frNext:
			r.NextAttempt = unzig(n)
		case frDiag:
			r.Diag = v
		case frInternal:
			r.Internal = n != 0
		case frParent:
			r.Parent = v
		case frChild:
			r.Children = append(r.Children, v)
		case frUntracked:
			r.Untracked = append(r.Untracked, v)
		case frList:
			r.List = n != 0
		case frOwner:
			r.OwnerMTA = v
		case frQueue:
			r.Queue = v
		case frHop:
			r.Hop = int(unzig(n))
		case frRecallReq:
			r.RecallReq = unzig(n)
		default:
			continue // a later version's field
		}
		switch f {
		case frLast, frRetryUntil, frNext, frInternal, frList, frHop, frRecallReq:
			d.want(wt, wtVarint)
		default:
			d.want(wt, wtBytes)
		}
	}
	if d.err != nil {
		return d.err
	}
	if r.Final == "" {
		return fmt.Errorf("%w: recipient without address", trackstore.ErrCorrupt)
	}
	if r.LastAttempt < 0 || r.RetryUntil < 0 || r.NextAttempt < 0 || r.RecallReq < 0 || r.Hop < 0 {
		return fmt.Errorf("%w: negative value in recipient", trackstore.ErrCorrupt)
	}
	return nil
}

func decodeHeadV2(body string) (*wireHead, error) {
	h := new(wireHead)
	if n := countField(body, fhRcpt); n > 0 {
		h.Rcpts = make([]wireRcpt, 0, n)
	}
	d := dec{s: body}
	for d.more() {
		f, wt := d.field()
		n, v := d.value(wt)
		if d.err != nil {
			break
		}
		num := true
		switch f {
		case fhCert:
			h.Cert, num = []byte(v), false
		case fhEnvID:
			h.EnvID, num = v, false
		case fhTimeout:
			h.Timeout = unzig(n)
		case fhExpires:
			h.Expires = unzig(n)
		case fhSender:
			h.Sender, num = v, false
		case fhArrival:
			h.Arrival = unzig(n)
		case fhMTA:
			h.MTA, num = v, false
		case fhHoldUntil:
			h.HoldUntil = unzig(n)
		case fhHeld:
			h.Held = n != 0
		case fhRecall:
			h.Recall = unzig(n)
		case fhHop:
			num = false
			var hp wireHop
			hd := dec{s: v}
			for hd.more() {
				hf, hwt := hd.field()
				hn, hv := hd.value(hwt)
				switch hf {
				case fpMTA:
					hp.MTA = hv
				case fpQueue:
					hp.Queue = hv
				case fpArrival:
					hp.Arrival = unzig(hn)
				case fpInternal:
					hp.Internal = hn != 0
				}
			}
			if hd.err != nil {
				return nil, hd.err
			}
			h.Hops = append(h.Hops, hp)
		case fhShardMask:
			if n >= 1<<ShardCount {
				d.fail("shard mask out of range")
			}
			h.ShardMask = uint32(n)
		case fhShardCount:
			h.ShardCount = int(unzig(n))
		case fhEvent:
			h.Events, num = append(h.Events, v), false
		case fhWriter:
			h.Writer = n
		case fhRcpt:
			num = false
			h.Rcpts = append(h.Rcpts, wireRcpt{})
			if err := decodeRcpt(v, &h.Rcpts[len(h.Rcpts)-1]); err != nil {
				return nil, err
			}
		case fhSharded:
			h.Sharded = n != 0
		default:
			continue
		}
		if num {
			d.want(wt, wtVarint)
		} else {
			d.want(wt, wtBytes)
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	return h, nil
}

func decodeShardV2(body string) (*wireShard, error) {
	s := new(wireShard)
	if n := countField(body, fsRcpt); n > 0 {
		s.Rcpts = make([]wireRcpt, 0, n)
	}
	d := dec{s: body}
	for d.more() {
		f, wt := d.field()
		n, v := d.value(wt)
		if d.err != nil {
			break
		}
		num := true
		switch f {
		case fsCert:
			s.Cert, num = []byte(v), false
		case fsN:
			s.N = int(unzig(n))
		case fsExpires:
			s.Expires = unzig(n)
		case fsRcpt:
			num = false
			s.Rcpts = append(s.Rcpts, wireRcpt{})
			if err := decodeRcpt(v, &s.Rcpts[len(s.Rcpts)-1]); err != nil {
				return nil, err
			}
		case fsEvent:
			s.Events, num = append(s.Events, v), false
		case fsWriter:
			s.Writer = n
		default:
			continue
		}
		if num {
			d.want(wt, wtVarint)
		} else {
			d.want(wt, wtBytes)
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	return s, nil
}

// encodeItemV1 encodes in format version 1 (JSON). Only tests and the
// fuzz corpus use it, to check that version 1 items still read.
func encodeItemV1(kind byte, v any) ([]byte, error) {
	var buf bytes.Buffer
	buf.Write([]byte{magic0, magic1, kind, 1})
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		return nil, fmt.Errorf("tracking: encoding record: %w", err)
	}
	b := buf.Bytes()
	return b[:len(b)-1], nil
}

// checkHeader checks the item header and returns the format version and
// the body.
func checkHeader(b []byte, kind byte) (byte, []byte, error) {
	if len(b) < hdrLen || b[0] != magic0 || b[1] != magic1 {
		return 0, nil, fmt.Errorf("%w: no tracking record header", trackstore.ErrCorrupt)
	}
	if b[2] != kind {
		return 0, nil, fmt.Errorf("%w: item kind %q, want %q", trackstore.ErrCorrupt, b[2], kind)
	}
	if b[3] != 1 && b[3] != FormatVersion {
		return 0, nil, fmt.Errorf("%w: format version %d unsupported (this package reads 1 and %d)", trackstore.ErrCorrupt, b[3], FormatVersion)
	}
	return b[3], b[hdrLen:], nil
}

// decodeHead decodes a head item (either format version); cert, when
// not nil, must match the one stored (foreign bytes under the key are
// corrupt).
func decodeHead(b []byte, cert []byte) (*wireHead, error) {
	v, body, err := checkHeader(b, kindHead)
	if err != nil {
		return nil, err
	}
	var h *wireHead
	if v == 1 {
		h = new(wireHead)
		if err := json.Unmarshal(body, h); err != nil {
			return nil, fmt.Errorf("%w: head: %w", trackstore.ErrCorrupt, err)
		}
		// Version 1 kept every recipient in shards.
		h.Rcpts, h.Sharded = nil, true
	} else if h, err = decodeHeadV2(string(body)); err != nil {
		return nil, err
	}
	if len(h.Cert) == 0 || (cert != nil && !bytes.Equal(h.Cert, cert)) {
		return nil, fmt.Errorf("%w: head belongs to another certifier", trackstore.ErrCorrupt)
	}
	if h.ShardCount != ShardCount {
		return nil, fmt.Errorf("%w: head has %d shards, this format has %d", trackstore.ErrCorrupt, h.ShardCount, ShardCount)
	}
	if h.Timeout < 0 || h.Expires < 0 {
		return nil, fmt.Errorf("%w: negative time in head", trackstore.ErrCorrupt)
	}
	if !h.Sharded && h.ShardMask != 0 {
		return nil, fmt.Errorf("%w: unsharded head lists shards", trackstore.ErrCorrupt)
	}
	for i := range h.Rcpts {
		if h.Rcpts[i].Final == "" {
			return nil, fmt.Errorf("%w: recipient without address", trackstore.ErrCorrupt)
		}
	}
	return h, nil
}

// decodeShard decodes shard n of cert (cert nil: any certifier; n < 0:
// any shard number), either format version.
func decodeShard(b []byte, cert []byte, n int) (*wireShard, error) {
	v, body, err := checkHeader(b, kindShard)
	if err != nil {
		return nil, err
	}
	var s *wireShard
	if v == 1 {
		s = new(wireShard)
		if err := json.Unmarshal(body, s); err != nil {
			return nil, fmt.Errorf("%w: shard: %w", trackstore.ErrCorrupt, err)
		}
	} else if s, err = decodeShardV2(string(body)); err != nil {
		return nil, err
	}
	if len(s.Cert) == 0 || (cert != nil && !bytes.Equal(s.Cert, cert)) {
		return nil, fmt.Errorf("%w: shard belongs to another certifier", trackstore.ErrCorrupt)
	}
	if s.N < 0 || s.N >= ShardCount || (n >= 0 && s.N != n) {
		return nil, fmt.Errorf("%w: shard number %d under the key of shard %d", trackstore.ErrCorrupt, s.N, n)
	}
	if s.Expires < 0 {
		return nil, fmt.Errorf("%w: negative time in shard", trackstore.ErrCorrupt)
	}
	for i := range s.Rcpts {
		if s.Rcpts[i].Final == "" {
			return nil, fmt.Errorf("%w: recipient without address", trackstore.ErrCorrupt)
		}
	}
	return s, nil
}

// rememberEvent appends id to a bounded list of applied event IDs.
func rememberEvent(list []string, id string) []string {
	if id == "" {
		return list
	}
	list = append(list, id)
	if n := len(list) - MaxAppliedEvents; n > 0 {
		list = append(list[:0], list[n:]...)
	}
	return list
}

func hasEvent(list []string, id string) bool {
	if id == "" {
		return false
	}
	for _, e := range list {
		if e == id {
			return true
		}
	}
	return false
}
