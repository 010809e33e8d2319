package futurerelease

// DSNField is the per-message field a delivery status notification about
// a held message carries to repeat the client's hold request. RFC 4865
// updates RFC 3464 (its header says so) by adding this field; its name and
// the value forms below were taken from two independent implementations
// (one cites RFC 4865 line by line, the other is the reference product's
// own test suite), not from the RFC's text, which this project could not
// read (see the package doc).
const DSNField = "Future-Release-Request"

// Prefixes of a DSNField value: "for;" before a HOLDFOR interval,
// "until;" before a HOLDUNTIL date-time.
const (
	DSNFor   = "for;"
	DSNUntil = "until;"
)

// DSNValue returns the value of DSNField for h: "for;" and the HOLDFOR
// seconds, or "until;" and the HOLDUNTIL date-time, both as the client
// sent them in wire form (Value). A DSN generator writes it among the
// per-message fields as
//
//	Future-Release-Request: for;3600
//
// The zero Hold (no hold parameter) has no field: DSNValue returns "".
func (h Hold) DSNValue() string {
	switch h.Name {
	case HoldFor:
		return DSNFor + h.Value()
	case HoldUntil:
		return DSNUntil + h.Value()
	}
	return ""
}
