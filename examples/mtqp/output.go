package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/msgtrack/msgtrack/mtqp"
)

// JSONSchemaVersion is the "schema" member of -json output. It changes
// only when a member is removed or changes meaning; new members may be
// added without changing it.
const JSONSchemaVersion = 1

// Extension fields this command knows by name: the recall extension's
// per-recipient outcome, and those tracking/mtqpbackend writes (the engine's
// finer state and the last reply), plus RFC 3464's Diagnostic-Code, which
// other servers may send.
const (
	fieldTrackingState = "X-Tracking-State"
	fieldDiagnostic    = "X-Diagnostic"
	fieldDiagnosticRFC = "Diagnostic-Code"
)

// jsonOutput is the document -json writes, one per run, followed by a
// newline. See the package documentation for the schema.
type jsonOutput struct {
	Schema     int             `json:"schema"`
	Command    string          `json:"command"`
	EnvelopeID string          `json:"envelope_id"`
	Server     string          `json:"server"`
	Hops       []jsonHop       `json:"hops"`
	Recipients []jsonRecipient `json:"recipients"`
}

type jsonHop struct {
	Host         string      `json:"host"`
	Referrer     string      `json:"referrer,omitempty"`
	Depth        int         `json:"depth"`
	Answered     bool        `json:"answered"`
	Error        string      `json:"error,omitempty"`
	ReportingMTA string      `json:"reporting_mta,omitempty"`
	ArrivalDate  string      `json:"arrival_date,omitempty"`
	Extensions   []jsonField `json:"extensions,omitempty"`
}

type jsonRecipient struct {
	Host              string      `json:"host"`
	OriginalRecipient string      `json:"original_recipient,omitempty"`
	FinalRecipient    string      `json:"final_recipient"`
	Action            string      `json:"action"`
	Status            string      `json:"status"`
	RemoteMTA         string      `json:"remote_mta,omitempty"`
	LastAttemptDate   string      `json:"last_attempt_date,omitempty"`
	WillRetryUntil    string      `json:"will_retry_until,omitempty"`
	RecallStatus      string      `json:"recall_status,omitempty"`
	TrackingState     string      `json:"tracking_state,omitempty"`
	Diagnostic        string      `json:"diagnostic,omitempty"`
	Extensions        []jsonField `json:"extensions,omitempty"`
}

type jsonField struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// answer is what a run produced: the hops asked (one without -follow)
// and the merged recipients.
type answer struct {
	command string
	envid   string
	server  string
	path    *mtqp.Path
}

func (a *answer) recipients() []mtqp.PathRecipient { return a.path.Recipients() }

func ext(fields []mtqp.Field, name string) string {
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

func diagnostic(rc *mtqp.Recipient) string {
	if d := ext(rc.Extensions, fieldDiagnostic); d != "" {
		return d
	}
	return ext(rc.Extensions, fieldDiagnosticRFC)
}

func jsonDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}

func jsonFields(fs []mtqp.Field) []jsonField {
	var out []jsonField
	for _, f := range fs {
		out = append(out, jsonField{Name: f.Name, Value: f.Value})
	}
	return out
}

func (a *answer) json() jsonOutput {
	o := jsonOutput{Schema: JSONSchemaVersion, Command: a.command, EnvelopeID: a.envid, Server: a.server,
		Hops: []jsonHop{}, Recipients: []jsonRecipient{}}
	for _, h := range a.path.Hops {
		jh := jsonHop{Host: h.Host, Referrer: h.Referrer, Depth: h.Depth, Answered: h.Result != nil}
		if h.Err != nil {
			jh.Error = oneLine(h.Err.Error())
		}
		if h.Result != nil {
			r := h.Result.Report
			jh.ReportingMTA = r.ReportingMTA.Value
			jh.ArrivalDate = jsonDate(r.ArrivalDate)
			jh.Extensions = jsonFields(r.Extensions)
		}
		o.Hops = append(o.Hops, jh)
	}
	for _, pr := range a.recipients() {
		rc := pr.Recipient
		o.Recipients = append(o.Recipients, jsonRecipient{
			Host:              pr.Host,
			OriginalRecipient: rc.OriginalRecipient.Value,
			FinalRecipient:    rc.FinalRecipient.Value,
			Action:            string(rc.Action),
			Status:            rc.Status.String(),
			RemoteMTA:         rc.RemoteMTA.Value,
			LastAttemptDate:   jsonDate(rc.LastAttemptDate),
			WillRetryUntil:    jsonDate(rc.WillRetryUntil),
			RecallStatus:      string(rc.RecallStatus()),
			TrackingState:     ext(rc.Extensions, fieldTrackingState),
			Diagnostic:        diagnostic(&rc),
			Extensions:        jsonFields(rc.Extensions),
		})
	}
	return o
}

func (a *answer) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // addresses keep their "<" and ">" readable
	return enc.Encode(a.json())
}

// writeRaw writes the message/tracking-status body of every answered hop
// exactly as received (one hop without -follow; -raw with -follow is
// refused).
func (a *answer) writeRaw(w io.Writer) error {
	for _, h := range a.path.Hops {
		if h.Result != nil {
			if _, err := w.Write(h.Result.Raw); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeTable writes the readable form: the per-message fields of each
// hop, then one line per recipient.
func (a *answer) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	multi := len(a.path.Hops) > 1
	for i, h := range a.path.Hops {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		if h.Result == nil {
			fmt.Fprintf(tw, "Server:\t%s (referred by %s): no answer: %s\n", clean(h.Host), clean(h.Referrer), clean(oneLine(errString(h.Err))))
			continue
		}
		r := h.Result.Report
		fmt.Fprintf(tw, "Server:\t%s\n", clean(h.Host))
		if h.Referrer != "" {
			fmt.Fprintf(tw, "Referred-By:\t%s\n", clean(h.Referrer))
		}
		fmt.Fprintf(tw, "Envelope-Id:\t%s\n", clean(r.EnvelopeID))
		fmt.Fprintf(tw, "Reporting-MTA:\t%s\n", clean(r.ReportingMTA.String()))
		if !r.ArrivalDate.IsZero() {
			fmt.Fprintf(tw, "Arrival-Date:\t%s\n", mtqp.FormatDate(r.ArrivalDate))
		}
		for _, f := range r.Extensions {
			fmt.Fprintf(tw, "%s:\t%s\n", clean(f.Name), clean(f.Value))
		}
	}
	fmt.Fprintln(tw)
	if multi {
		fmt.Fprint(tw, "SERVER\t")
	}
	fmt.Fprintln(tw, "RECIPIENT\tACTION\tSTATUS\tREMOTE-MTA\tRECALL\tDIAGNOSTIC")
	for _, pr := range a.recipients() {
		rc := pr.Recipient
		action := string(rc.Action)
		if st := ext(rc.Extensions, fieldTrackingState); st != "" && !strings.EqualFold(st, action) {
			action += " (" + st + ")"
		}
		if multi {
			fmt.Fprintf(tw, "%s\t", clean(pr.Host))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n",
			clean(rc.FinalRecipient.Value), clean(action), rc.Status,
			dash(clean(rc.RemoteMTA.Value)), dash(clean(string(rc.RecallStatus()))), dash(clean(diagnostic(&rc))))
	}
	return tw.Flush()
}

func errString(err error) string {
	if err == nil {
		return "no answer"
	}
	return err.Error()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clean makes a server-supplied value safe for a terminal and for the
// table: control characters (escape sequences included) and invisible
// format characters (bidirectional overrides) become "?", tabs spaces.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return ' '
		case unicode.IsControl(r) || unicode.In(r, unicode.Cf):
			return '?'
		}
		return r
	}, s)
}

// oneLine folds a multi-line message into one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }), "; ")
}
