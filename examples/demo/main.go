// Command demo is the one-shot tour of msgtrack: it starts the reference
// MTA (examples/refmta/mta) in-process on free loopback ports with the
// in-memory tracking store, submits two messages over real SMTP (STARTTLS,
// AUTH PLAIN, ENVID, MTRK of RFC 3885, HOLDFOR of RFC 4865), tracks both
// over MTQP (RFC 3887, reports in RFC 3886 form), recalls the first while
// it is held, lets the second be released and delivered to a temporary
// Maildir, prints each step and report, and exits 0.
//
//	go run ./examples/demo        # the tour
//	go run ./examples/demo -log   # with the MTA's log lines on standard error
//
// Nothing needs to be installed: no memcached, no LDAP, no mail server.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/msgtrack/msgtrack/examples/refmta/mta"
	"github.com/msgtrack/msgtrack/mtqp"
	"github.com/msgtrack/msgtrack/mtrk"
	"github.com/msgtrack/msgtrack/smtpext"
)

func main() {
	verbose := flag.Bool("log", false, "also print the reference MTA's own log lines (to standard error)")
	flag.Parse()
	var logger *slog.Logger
	if *verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "msgtrack-demo-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	if _, err := run(ctx, os.Stdout, Options{Dir: dir, Logger: logger}); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// Options configure run.
type Options struct {
	// Dir holds the spool, the Maildir and the users file.
	Dir string
	// Hold is the release delay of the message that gets delivered;
	// default 2 s.
	Hold time.Duration
	// Logger receives the MTA's own logs; nil discards them.
	Logger *slog.Logger
}

// Outcome is what the demo observed, for its test.
type Outcome struct {
	// Recalled and Delivered are the envelope IDs of the two messages.
	Recalled, Delivered string
	// RecallStatus is the recall's answer for the recalled message.
	RecallStatus mtqp.RecallStatus
	// FinalActions are the last tracked Action of each message's
	// recipient, by envelope ID.
	FinalActions map[string]mtqp.Action
	// Maildir is the recipient's Maildir new/ directory; Files the
	// messages found in it.
	Maildir string
	Files   []string
}

const (
	user     = "alice"
	password = "demo-password"
	sender   = "alice@example.test"
	rcptAddr = "bob@example.test"
)

type message struct {
	envid  string
	secret mtrk.Secret
	hold   time.Duration
}

func run(ctx context.Context, w io.Writer, o Options) (*Outcome, error) {
	if o.Hold == 0 {
		o.Hold = 2 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	usersFile := filepath.Join(o.Dir, "users")
	if err := os.WriteFile(usersFile, []byte(user+":"+password+"\nbob:bob-password\n"), 0o600); err != nil {
		return nil, err
	}
	maildirRoot := filepath.Join(o.Dir, "maildir")
	m, err := mta.New(ctx, mta.Config{
		MXAddr: "127.0.0.1:0", SubmissionAddr: "127.0.0.1:0", MTQPAddr: "127.0.0.1:0",
		Hostname: "mta.example.test", Store: "memory",
		SpoolDir: filepath.Join(o.Dir, "spool"), MaildirRoot: maildirRoot,
		LocalDomains: []string{"example.test"}, UsersFile: usersFile,
		PollInterval: 500 * time.Millisecond, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	m.Start(context.WithoutCancel(ctx))
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = m.Shutdown(sctx)
	}()
	a := m.Addrs()
	fmt.Fprintf(w, "== reference MTA %s started: MX %s, submission %s, MTQP %s, store in memory\n", m.Hostname(), a.MX, a.Submission, a.MTQP)

	msgs := []*message{{envid: "demo-recall-1", hold: time.Hour}, {envid: "demo-deliver-2", hold: o.Hold}}
	for i, msg := range msgs {
		if msg.secret, err = mtrk.NewSecret(); err != nil {
			return nil, err
		}
		fmt.Fprintf(w, "\n== step %d: submit %s with ENVID=%s MTRK=%s:86400 HOLDFOR=%d\n", i+1, msg.envid, msg.envid, msg.secret.Certifier(), int(msg.hold.Seconds()))
		fmt.Fprintf(w, "   (the secret A=%s stays with the sender; only B=SHA1(A) travels)\n", msg.secret)
		if err := submit(ctx, a.Submission, msg); err != nil {
			return nil, fmt.Errorf("submitting %s: %w", msg.envid, err)
		}
		fmt.Fprintln(w, "   250: accepted and spooled")
	}

	mq, err := mtqp.Dial(ctx, a.MTQP)
	if err != nil {
		return nil, err
	}
	defer mq.Close()
	if err := mq.StartTLS(ctx, &tls.Config{InsecureSkipVerify: true}); err != nil { //nolint:gosec // the demo's self-signed certificate
		return nil, err
	}
	fmt.Fprintf(w, "\n== step 3: MTQP connected to %s (STARTTLS), options %v, recall offered: %v\n", a.MTQP, mq.Greeting().Options, mq.Supports(mtqp.OptionRecall))
	for _, msg := range msgs {
		if _, err := track(ctx, w, mq, msg); err != nil {
			return nil, err
		}
	}

	out := &Outcome{Recalled: msgs[0].envid, Delivered: msgs[1].envid, FinalActions: map[string]mtqp.Action{}}
	fmt.Fprintf(w, "\n== step 4: RECALL %s while it is held\n", msgs[0].envid)
	res, err := mq.Recall(ctx, msgs[0].envid, msgs[0].secret)
	if err != nil {
		return nil, fmt.Errorf("recall: %w", err)
	}
	printReport(w, res.Report)
	if len(res.Report.Recipients) > 0 {
		out.RecallStatus = res.Report.Recipients[0].RecallStatus()
	}

	fmt.Fprintf(w, "\n== step 5: wait for %s to be released (HOLDFOR=%d) and delivered\n", msgs[1].envid, int(o.Hold.Seconds()))
	deadline := time.Now().Add(time.Minute)
	for {
		r, err := mq.Track(ctx, msgs[1].envid, msgs[1].secret)
		if err != nil {
			return nil, err
		}
		if len(r.Report.Recipients) > 0 && r.Report.Recipients[0].Action == mtqp.ActionDelivered {
			break
		}
		if time.Now().After(deadline) {
			return nil, errors.New("the second message was not delivered in time")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}

	fmt.Fprintln(w, "\n== step 6: final reports")
	for _, msg := range msgs {
		rep, err := track(ctx, w, mq, msg)
		if err != nil {
			return nil, err
		}
		if len(rep.Recipients) > 0 {
			out.FinalActions[msg.envid] = rep.Recipients[0].Action
		}
	}
	_ = mq.Quit(ctx)

	out.Maildir = filepath.Join(maildirRoot, "bob", "new")
	entries, _ := os.ReadDir(out.Maildir)
	fmt.Fprintf(w, "\n== step 7: Maildir %s\n", out.Maildir)
	for _, e := range entries {
		p := filepath.Join(out.Maildir, e.Name())
		out.Files = append(out.Files, p)
		b, _ := os.ReadFile(p)
		subject := ""
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "Subject:") {
				subject = strings.TrimSpace(line)
				break
			}
		}
		fmt.Fprintf(w, "   %s  %s\n", e.Name(), subject)
	}
	fmt.Fprintf(w, "\n== done: %s recalled (%s), %s delivered; %d message(s) in the Maildir\n",
		out.Recalled, out.RecallStatus, out.Delivered, len(out.Files))
	return out, nil
}

// submit sends msg over the submission port: EHLO, STARTTLS, AUTH PLAIN,
// MAIL FROM with ENVID, MTRK and HOLDFOR, RCPT, DATA.
func submit(ctx context.Context, addr string, msg *message) error {
	c, err := smtpext.Dial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello(ctx, "client.example.test"); err != nil {
		return err
	}
	if err := c.StartTLS(ctx, &tls.Config{InsecureSkipVerify: true}); err != nil { //nolint:gosec // the demo's self-signed certificate
		return err
	}
	if err := c.Auth(ctx, sasl.NewPlainClient("", user, password)); err != nil {
		return err
	}
	if err := c.Mail(ctx, sender,
		smtpext.MailParam{Name: "ENVID", Value: smtpext.XText(msg.envid), Keyword: "DSN"},
		smtpext.MailParam{Name: "MTRK", Value: msg.secret.Certifier().String() + ":86400", Keyword: "MTRK"},
		smtpext.MailParam{Name: "HOLDFOR", Value: fmt.Sprint(int(msg.hold.Seconds())), Keyword: "FUTURERELEASE"},
	); err != nil {
		return err
	}
	if _, err := c.Rcpt(ctx, rcptAddr); err != nil {
		return err
	}
	wc, err := c.Data(ctx)
	if err != nil {
		return err
	}
	body := "From: " + sender + "\r\nTo: " + rcptAddr + "\r\nSubject: " + msg.envid + "\r\n" +
		"Message-ID: <" + msg.envid + "@example.test>\r\nDate: " + time.Now().Format(time.RFC1123Z) + "\r\n\r\n" +
		"This is " + msg.envid + ".\r\n"
	if _, err := io.WriteString(wc, body); err != nil {
		return err
	}
	if err := wc.Close(); err != nil {
		return err
	}
	return c.Quit(ctx)
}

func track(ctx context.Context, w io.Writer, mq *mtqp.Client, msg *message) (*mtqp.Report, error) {
	fmt.Fprintf(w, "   TRACK %s\n", msg.envid)
	r, err := mq.Track(ctx, msg.envid, msg.secret)
	if err != nil {
		return nil, fmt.Errorf("track %s: %w", msg.envid, err)
	}
	printReport(w, r.Report)
	return r.Report, nil
}

func printReport(w io.Writer, r *mtqp.Report) {
	fmt.Fprintf(w, "     Original-Envelope-Id: %s  Reporting-MTA: %s\n", r.EnvelopeID, r.ReportingMTA)
	for _, f := range r.Extensions {
		fmt.Fprintf(w, "     %s: %s\n", f.Name, f.Value)
	}
	for _, rc := range r.Recipients {
		fmt.Fprintf(w, "     %-24s Action: %-9s Status: %s", rc.FinalRecipient.Value, rc.Action, rc.Status)
		for _, f := range rc.Extensions {
			fmt.Fprintf(w, "  %s: %s", f.Name, f.Value)
		}
		fmt.Fprintln(w)
	}
}
