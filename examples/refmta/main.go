// Command refmta is the msgtrack reference MTA: an MX listener, a
// submission listener and an MTQP listener over a durable spool, with
// message tracking (RFC 3885), tracking queries (RFC 3886, RFC 3887),
// future release (RFC 4865) and recall. See package
// github.com/msgtrack/msgtrack/examples/refmta/mta for how it is put
// together, and refmta -h for the flags.
//
// Precedence: the product's option file (-options, option.dat format)
// and channel table (-channels, imta.cnf channel blocks) are read first;
// a flag given on the command line wins over them. In particular -store,
// when given, wins over tracking_mode/memcache_host/memcache_port, and
// -ldap-attr over ldap_attr_auth_recall_secret. Channels the table does
// not define (tcp_local for MX, tcp_submit for submission, tcp_relay
// towards -relay) get built-in defaults (mta.DefaultChannel).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/msgtrack/msgtrack/channelopts"
	"github.com/msgtrack/msgtrack/examples/refmta/mta"
)

const usageHead = `usage: refmta [flags]

refmta is the msgtrack reference MTA. It listens for mail exchange (MX,
MTRK per channel options, no FUTURERELEASE, relay only to local domains),
for submission (STARTTLS, AUTH PLAIN from -users, MTRK, FUTURERELEASE,
relay for authenticated users) and for MTQP tracking queries and recalls.

Precedence: -options and -channels files are read first; any flag given
on the command line wins over the same setting from a file (for example
-store over tracking_mode/memcache_host, -ldap-attr over
ldap_attr_auth_recall_secret). Channels used: tcp_local (MX), tcp_submit
(submission), tcp_relay (towards -relay); missing ones get defaults
(tcp_local: trackingserver; tcp_submit: trackingserver trackinggenerate
259200; tcp_relay: trackingclient). A listen address of "-" disables
that listener. Without -tls-cert/-tls-key a self-signed certificate is
made at start. SIGTERM or SIGINT stops accepting, finishes in-flight
work and exits; SIGHUP re-reads -users and -aliases.

flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("refmta", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	var (
		mx          = fs.String("mx", mta.DefaultMXAddr, "MX (SMTP) listen address")
		submission  = fs.String("submission", mta.DefaultSubmissionAddr, "submission (RFC 6409) listen address")
		mtqpAddr    = fs.String("mtqp", mta.DefaultMTQPAddr, "MTQP (RFC 3887) listen address")
		hostname    = fs.String("hostname", "", "this MTA's name (EHLO, Received, Reporting-MTA); must differ between MTAs sharing a store (default: os.Hostname)")
		store       = fs.String("store", "memory", "tracking store: memory, or memcache://host:port[,host:port...] (wins over tracking_mode/memcache_host when given)")
		spoolDir    = fs.String("spool", "./spool", "spool directory (durable queue)")
		maildirDir  = fs.String("maildir", "./maildir", "Maildir root: <maildir>/<user>/{tmp,new,cur}")
		localDoms   = fs.String("local-domains", "localhost", "comma-separated domains delivered to Maildir")
		usersFile   = fs.String("users", "", "users file, name:password lines ($2... is bcrypt); the local mailboxes and AUTH PLAIN")
		aliasesFile = fs.String("aliases", "", "aliases file (\"name: a, b\"; \"list name: ...\" marks a mailing list)")
		mxInternal  = fs.Bool("mx-internal", false, "the MX listener receives mail from other MTAs of this deployment (sharing -store): tracked arrivals join the sender's record as a further hop")
		relay       = fs.String("relay", "", "host:port to relay mail for other domains to (empty: such mail fails with 5.4.4)")
		maxHold     = fs.Duration("max-hold", mta.DefaultMaxHold, "FUTURERELEASE max-future-release-interval")
		options     = fs.String("options", "", "MTA option file (option.dat: tracking_mode, memcache_host, log_tracking, ...)")
		channels    = fs.String("channels", "", "channel table (imta.cnf channel blocks: tcp_local, tcp_submit, tcp_relay)")
		tlsCert     = fs.String("tls-cert", "", "TLS certificate PEM file (default: self-signed at start)")
		tlsKey      = fs.String("tls-key", "", "TLS private key PEM file")
		ldapURL     = fs.String("ldap-url", "", "LDAP directory with users' general recall secrets (ldap:// or ldaps://); enables the SHA-1 trackinggenerate path")
		ldapBindDN  = fs.String("ldap-bind-dn", "", "LDAP bind DN (empty: anonymous)")
		ldapBindPW  = fs.String("ldap-bind-password", "", "LDAP bind password (prefer -ldap-bind-password-file)")
		ldapBindPWF = fs.String("ldap-bind-password-file", "", "file holding the LDAP bind password")
		ldapBase    = fs.String("ldap-base", "", "LDAP search base DN")
		ldapFilter  = fs.String("ldap-filter", "", "LDAP filter, %s is the user name (default (uid=%s))")
		ldapAttr    = fs.String("ldap-attr", "", "attribute holding the general recall secret (default: ldap_attr_auth_recall_secret)")
		ldapTLS     = fs.Bool("ldap-starttls", false, "use StartTLS on an ldap:// URL")
		lifetime    = fs.Duration("max-lifetime", 5*24*time.Hour, "queue lifetime before a message fails (DSN 4.4.7)")
		backoff     = fs.Duration("retry", 30*time.Minute, "first retry delay after a temporary failure (doubles, up to 4h)")
		poll        = fs.Duration("recall-poll", mta.DefaultPollInterval, "how often queued tracked messages are checked for recalls made at other MTAs")
		maxConns    = fs.Int("max-connections", 0, "connection cap per listener (0: 1024, negative: none)")
		sessRate    = fs.Float64("session-rate", mta.DefaultSessionRate, "new SMTP sessions per second per client IP (negative: unlimited)")
		sessBurst   = fs.Int("session-burst", mta.DefaultSessionBurst, "burst of new SMTP sessions per client IP")
		logJSON     = fs.Bool("log-json", false, "write logs as JSON")
	)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "refmta: unexpected arguments: %v\n", fs.Args())
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var handler slog.Handler = slog.NewTextHandler(stderr, nil)
	if *logJSON {
		handler = slog.NewJSONHandler(stderr, nil)
	}
	log := slog.New(handler)

	cfg := mta.Config{
		MXAddr: *mx, SubmissionAddr: *submission, MTQPAddr: *mtqpAddr,
		Hostname: *hostname, SpoolDir: *spoolDir, MaildirRoot: *maildirDir,
		InternalMX: *mxInternal, UsersFile: *usersFile, AliasesFile: *aliasesFile, Relay: *relay,
		MaxHold: *maxHold, TLSCert: *tlsCert, TLSKey: *tlsKey,
		MaxLifetime: *lifetime, InitialBackoff: *backoff, PollInterval: *poll,
		MaxConnections: *maxConns, SessionRate: *sessRate, SessionBurst: *sessBurst,
		Logger: log,
	}
	for _, d := range strings.Split(*localDoms, ",") {
		if d = strings.TrimSpace(d); d != "" {
			cfg.LocalDomains = append(cfg.LocalDomains, d)
		}
	}
	if *options != "" {
		opts, err := parseFile(*options, channelopts.ParseMTA)
		if err != nil {
			fmt.Fprintf(stderr, "refmta: %v\n", err)
			return 2
		}
		cfg.Options = *opts
	}
	if *channels != "" {
		chs, err := parseFile(*channels, func(r io.Reader, name string) ([]channelopts.Channel, error) {
			return channelopts.ParseChannels(r, name)
		})
		if err != nil {
			fmt.Fprintf(stderr, "refmta: %v\n", err)
			return 2
		}
		cfg.Channels = chs
	}
	// Flags win over the option file: -store only when given explicitly
	// (otherwise tracking_mode 1 selects memcached).
	if set["store"] || cfg.Options.TrackingMode != channelopts.ModeMemcached {
		cfg.Store = *store
	}
	if *ldapURL != "" {
		pw := *ldapBindPW
		if *ldapBindPWF != "" {
			b, err := os.ReadFile(*ldapBindPWF)
			if err != nil {
				fmt.Fprintf(stderr, "refmta: %v\n", err)
				return 2
			}
			pw = strings.TrimRight(string(b), "\r\n")
		}
		cfg.LDAP = mta.LDAPConfig{
			URL: *ldapURL, BindDN: *ldapBindDN, BindPassword: pw, BaseDN: *ldapBase,
			Filter: *ldapFilter, Attribute: *ldapAttr, StartTLS: *ldapTLS,
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	m, err := mta.New(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "refmta: %v\n", err)
		return 1
	}
	bg, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.Start(bg)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-hup:
			if err := m.Reload(bg); err != nil {
				log.Error("refmta: reload (previous contents kept)", "err", err)
			} else {
				log.Info("refmta: users and aliases reloaded")
			}
		}
	}
	log.Info("refmta: stopping")
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	if err := m.Shutdown(sctx); err != nil {
		log.Error("refmta: shutdown", "err", err)
		return 1
	}
	return 0
}

func parseFile[T any](path string, parse func(io.Reader, string) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, err
	}
	defer f.Close()
	return parse(f, path)
}
