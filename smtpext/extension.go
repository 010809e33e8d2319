package smtpext

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/emersion/go-smtp"
)

// ConnInfo describes a connection at the moment an extension's condition
// or parser is consulted.
type ConnInfo struct {
	// Listener is the name given in ListenerConfig ("" for Serve/ServeTLS).
	Listener string
	// RemoteAddr and LocalAddr are the addresses of the client's socket.
	RemoteAddr, LocalAddr net.Addr
	// TLS is the negotiated TLS state, nil on a plaintext connection.
	TLS *tls.ConnectionState
	// Authenticated is true once go-smtp answered 235 to AUTH on this
	// connection (it is cleared by STARTTLS, which starts a new session).
	Authenticated bool
	// LMTP is true when the server runs in LMTP mode (LHLO instead of EHLO).
	LMTP bool
}

// Condition decides whether an extension is enabled for a connection in
// its current state. It must be fast and free of I/O.
type Condition func(ConnInfo) bool

// AfterTLS is a Condition that holds once the connection runs over TLS
// (implicit TLS or after STARTTLS).
func AfterTLS(ci ConnInfo) bool { return ci.TLS != nil }

// OnListeners returns a Condition that holds on the named listeners only.
func OnListeners(names ...string) Condition {
	names = slices.Clone(names)
	return func(ci ConnInfo) bool { return slices.Contains(names, ci.Listener) }
}

// AllOf returns a Condition that holds when every one of conds holds.
func AllOf(conds ...Condition) Condition {
	conds = slices.Clone(conds)
	return func(ci ConnInfo) bool {
		for _, c := range conds {
			if c != nil && !c(ci) {
				return false
			}
		}
		return true
	}
}

// Extension is one ESMTP service extension (RFC 5321 section 2.2): an
// optional EHLO/LHLO keyword with parameters, and the MAIL FROM and RCPT
// TO parameters it adds (RFC 5321 sections 4.1.1.11 and 4.1.2,
// esmtp-param).
type Extension struct {
	// Keyword is the EHLO keyword to advertise (ehlo-keyword, RFC 5321
	// section 4.1.1.1), e.g. "MTRK". Leave it empty for an extension that
	// only inspects parameters go-smtp already advertises (see
	// ParamSpec.PassThrough), e.g. ENVID of DSN.
	Keyword string
	// KeywordArgs returns the keyword's parameters (ehlo-param) for this
	// connection, e.g. {"86400", "2026-08-03T00:00:00Z"} for FUTURERELEASE
	// (RFC 4865 section 3). Nil advertises the bare keyword.
	KeywordArgs func(ConnInfo) []string
	// When decides whether the extension is enabled (advertised and its
	// parameters accepted); nil means always. It is evaluated at EHLO time
	// for the advertisement and again at MAIL/RCPT time for the parameters:
	// a registered parameter of a disabled extension is answered with
	// 555 5.5.4 (RFC 5321 section 4.1.1.11) and go-smtp never sees the
	// command.
	When Condition
	// Mail and Rcpt list the parameters the extension adds to MAIL FROM
	// and RCPT TO.
	Mail, Rcpt []ParamSpec
}

// ParamSpec registers one MAIL FROM or RCPT TO parameter.
type ParamSpec struct {
	// Name is the esmtp-keyword, matched case-insensitively (go-smtp
	// upper-cases keywords with strings.ToUpper; so does this layer).
	Name string
	// Parse validates the raw esmtp-value (hasValue is false for a bare
	// keyword) and returns the value the session will see in Param.Value.
	// An error rejects the command: if it has a method
	// SMTPReply() (code int, enhanced [3]int, message string), or is a
	// *smtp.SMTPError, that reply is sent; otherwise 501 5.5.4 with the
	// error text. go-smtp never sees a rejected command and the session
	// continues. Nil accepts any value and stores the raw string.
	Parse func(ci ConnInfo, value string, hasValue bool) (any, error)
	// PassThrough leaves the parameter in the command for go-smtp, which
	// must know it (e.g. ENVID with Server.EnableDSN): the layer records
	// and validates it but does not remove it.
	PassThrough bool
}

// Param is one parameter of an accepted or in-progress MAIL/RCPT command.
type Param struct {
	// Name is the upper-cased keyword.
	Name string
	// Raw is the value as the client sent it (xtext is not decoded).
	Raw string
	// HasValue is false for a bare keyword.
	HasValue bool
	// Value is what ParamSpec.Parse returned (Raw when Parse is nil).
	Value any
}

// Params is the list of registered parameters of one command, in the
// order the client sent them.
type Params []Param

// Get returns the parameter with the given (case-insensitive) name.
func (ps Params) Get(name string) (Param, bool) {
	for _, p := range ps {
		if strings.EqualFold(p.Name, name) {
			return p, true
		}
	}
	return Param{}, false
}

// ReplyError is an error that carries an SMTP reply. The layer uses it
// for the replies it sends itself, and the Client returns it for a
// negative reply from the server.
type ReplyError struct {
	Code     int
	Enhanced [3]int // {0,0,0} when the reply had no enhanced status code
	Message  string
}

// Error implements error.
func (e *ReplyError) Error() string {
	if e.Enhanced == [3]int{} {
		return fmt.Sprintf("smtp %d %s", e.Code, e.Message)
	}
	return fmt.Sprintf("smtp %d %d.%d.%d %s", e.Code, e.Enhanced[0], e.Enhanced[1], e.Enhanced[2], e.Message)
}

// SMTPReply implements the project-wide reply convention.
func (e *ReplyError) SMTPReply() (code int, enhanced [3]int, message string) {
	return e.Code, e.Enhanced, e.Message
}

// Temporary reports whether the reply is a 4yz (transient) reply.
func (e *ReplyError) Temporary() bool { return e.Code/100 == 4 }

type smtpReplier interface {
	SMTPReply() (code int, enhanced [3]int, message string)
}

// replyFor turns a parser's error into the reply the layer sends.
func replyFor(err error) *ReplyError {
	var r smtpReplier
	if errors.As(err, &r) {
		code, enh, msg := r.SMTPReply()
		if code >= 400 && code <= 599 {
			return &ReplyError{Code: code, Enhanced: enh, Message: msg}
		}
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code >= 400 && se.Code <= 599 {
		enh := [3]int(se.EnhancedCode)
		if se.EnhancedCode == smtp.NoEnhancedCode {
			enh = [3]int{}
		}
		return &ReplyError{Code: se.Code, Enhanced: enh, Message: se.Message}
	}
	return &ReplyError{Code: 501, Enhanced: [3]int{5, 5, 4}, Message: err.Error()}
}

// format renders the reply as one line (CR, LF and other controls in the
// message are replaced so that a reply can never split).
func (e *ReplyError) format() []byte {
	msg := noCtl(e.Message)
	enh := e.Enhanced
	if enh == [3]int{} {
		cls := e.Code / 100
		if cls == 2 || cls == 4 || cls == 5 {
			enh = [3]int{cls, 0, 0}
		}
	}
	if enh == [3]int{} {
		return fmt.Appendf(nil, "%03d %s\r\n", e.Code, msg)
	}
	return fmt.Appendf(nil, "%03d %d.%d.%d %s\r\n", e.Code, enh[0], enh[1], enh[2], msg)
}

// isKeyword reports whether s is an ehlo-keyword / esmtp-keyword
// (RFC 5321 section 4.1.1.1: ALPHA / DIGIT, then ALPHA / DIGIT / "-").
func isKeyword(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '-') {
			return false
		}
	}
	return true
}

// goSMTPKeywords are the EHLO keywords go-smtp v0.26.0 may advertise
// itself, and goSMTPMailParams / goSMTPRcptParams the parameters it parses.
var (
	goSMTPKeywords = []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING",
		"STARTTLS", "AUTH", "SMTPUTF8", "REQUIRETLS", "BINARYMIME", "DSN", "SIZE",
		"LIMITS", "RRVS", "DELIVERBY", "MT-PRIORITY"}
	goSMTPMailParams = []string{"SIZE", "SMTPUTF8", "REQUIRETLS", "BODY", "RET", "ENVID",
		"AUTH", "BY", "MT-PRIORITY"}
	goSMTPRcptParams = []string{"NOTIFY", "ORCPT", "RRVS"}
)

// registry is the compiled form of the extensions of one Server.
type registry struct {
	exts []*Extension
	mail map[string]paramEntry
	rcpt map[string]paramEntry
}

type paramEntry struct {
	ext  *Extension
	spec ParamSpec
}

func newRegistry(exts []Extension) (*registry, error) {
	r := &registry{mail: map[string]paramEntry{}, rcpt: map[string]paramEntry{}}
	seenKW := map[string]bool{}
	for i := range exts {
		e := exts[i]
		e.Mail = slices.Clone(e.Mail)
		e.Rcpt = slices.Clone(e.Rcpt)
		ep := &e
		if e.Keyword != "" {
			kw := strings.ToUpper(e.Keyword)
			if !isKeyword(kw) {
				return nil, fmt.Errorf("smtpext: invalid EHLO keyword %q", e.Keyword)
			}
			if slices.Contains(goSMTPKeywords, kw) || seenKW[kw] {
				return nil, fmt.Errorf("smtpext: EHLO keyword %q is already advertised", kw)
			}
			seenKW[kw] = true
			ep.Keyword = kw
		}
		add := func(m map[string]paramEntry, specs []ParamSpec, builtin []string) error {
			for j := range specs {
				name := strings.ToUpper(specs[j].Name)
				if !isKeyword(name) {
					return fmt.Errorf("smtpext: invalid parameter name %q", specs[j].Name)
				}
				if _, dup := m[name]; dup {
					return fmt.Errorf("smtpext: parameter %q registered twice", name)
				}
				if slices.Contains(builtin, name) && !specs[j].PassThrough {
					return fmt.Errorf("smtpext: go-smtp parses %s itself; register it with PassThrough", name)
				}
				specs[j].Name = name
				m[name] = paramEntry{ext: ep, spec: specs[j]}
			}
			return nil
		}
		if err := add(r.mail, ep.Mail, goSMTPMailParams); err != nil {
			return nil, err
		}
		if err := add(r.rcpt, ep.Rcpt, goSMTPRcptParams); err != nil {
			return nil, err
		}
		r.exts = append(r.exts, ep)
	}
	return r, nil
}

func (e *Extension) enabled(ci ConnInfo) bool { return e.When == nil || e.When(ci) }
