package smtpext_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strings"

	"github.com/emersion/go-smtp"
	"github.com/msgtrack/msgtrack/smtpext"
)

// backend is a go-smtp backend whose session reads the layer's view.
type backend struct{}

func (backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{info: smtpext.FromConn(c)}, nil
}

type session struct{ info *smtpext.Info }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	// Parameters of the command being processed.
	if p, ok := s.info.CommandParams().Get("XDEMO"); ok {
		fmt.Printf("session: MAIL from %s with XDEMO=%v\n", from, p.Value)
	}
	return nil
}

func (s *session) Rcpt(string, *smtp.RcptOptions) error { return nil }

func (s *session) Data(r io.Reader) error {
	tx := s.info.Transaction() // what go-smtp accepted
	body, _ := io.ReadAll(r)
	fmt.Printf("session: %d recipient(s), body %q\n", len(tx.Rcpts), body)
	return nil
}

func (s *session) Reset()        {}
func (s *session) Logout() error { return nil }

// demoExtension advertises "XDEMO 1" and accepts MAIL FROM ... XDEMO=<word>.
var demoExtension = smtpext.Extension{
	Keyword:     "XDEMO",
	KeywordArgs: func(smtpext.ConnInfo) []string { return []string{"1"} },
	Mail: []smtpext.ParamSpec{{
		Name: "XDEMO",
		Parse: func(_ smtpext.ConnInfo, v string, has bool) (any, error) {
			if !has || v == "" {
				return nil, &smtpext.ReplyError{Code: 501, Enhanced: [3]int{5, 5, 4}, Message: "XDEMO needs a value"}
			}
			return strings.ToLower(v), nil
		},
	}},
}

func serve() (addr string, stop func()) {
	s := smtp.NewServer(backend{})
	s.Domain = "mx.example"
	srv, err := smtpext.NewServer(s, smtpext.Config{Extensions: []smtpext.Extension{demoExtension}})
	if err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l)
	return l.Addr().String(), func() { srv.Close() }
}

// NewServer wraps a configured go-smtp server; Serve runs it through the
// layer.
func ExampleNewServer() {
	addr, stop := serve()
	defer stop()

	ctx := context.Background()
	c, err := smtpext.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ok, args := c.Extension("XDEMO")
	fmt.Printf("before EHLO: %v %q\n", ok, args)
	if err := c.Hello(ctx, "client.example"); err != nil {
		log.Fatal(err)
	}
	ok, args = c.Extension("XDEMO")
	fmt.Println("advertised:", ok, args)
	err = c.Mail(ctx, "a@example.org", smtpext.MailParam{Name: "XDEMO", Keyword: "XDEMO"})
	var re *smtpext.ReplyError
	if errors.As(err, &re) {
		fmt.Println("refused:", re.Code, re.Message)
	}
	_ = c.Quit(ctx)
	// Output:
	// before EHLO: false ""
	// advertised: true 1
	// refused: 501 XDEMO needs a value
}

// A session finds its parameters through FromConn.
func ExampleFromConn() {
	addr, stop := serve()
	defer stop()

	ctx := context.Background()
	c, err := smtpext.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail(ctx, "a@example.org", smtpext.MailParam{Name: "XDEMO", Value: "Hello", Keyword: "XDEMO"}); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Rcpt(ctx, "b@example.org"); err != nil {
		log.Fatal(err)
	}
	w, err := c.Data(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprint(w, "Subject: hi\r\n\r\n.dot-stuffed\r\n")
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	_ = c.Quit(ctx)
	// Output:
	// session: MAIL from a@example.org with XDEMO=hello
	// session: 1 recipient(s), body "Subject: hi\r\n\r\n.dot-stuffed\r\n"
}

// Dial and Mail send a parameter only where the peer offers it.
func ExampleDial() {
	addr, stop := serve()
	defer stop()

	ctx := context.Background()
	c, err := smtpext.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	err = c.Mail(ctx, "a@example.org",
		smtpext.MailParam{Name: "MTRK", Value: "Q2VydGlmaWVy:3600", Keyword: "MTRK", IfSupported: true},
		smtpext.MailParam{Name: "XDEMO", Value: "yes", Keyword: "XDEMO"})
	fmt.Println("MAIL:", err)
	err = c.Mail(ctx, "a@example.org", smtpext.MailParam{Name: "MTRK", Value: "x", Keyword: "MTRK"})
	fmt.Println(errors.Is(err, smtpext.ErrNotAdvertised))
	_ = c.Quit(ctx)
	// Output:
	// session: MAIL from a@example.org with XDEMO=yes
	// MAIL: <nil>
	// true
}
