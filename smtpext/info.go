package smtpext

import (
	"crypto/tls"
	"net"

	"github.com/emersion/go-smtp"
)

// Transaction is what go-smtp has accepted in the current mail
// transaction: the MAIL FROM and the recipients it answered 250 to, with
// their registered parameters. It follows go-smtp's rules: a second MAIL
// replaces the sender but keeps the recipients; the transaction is
// cleared after the reply to DATA, after BDAT LAST, a BDAT 552 or a BDAT
// backend error, and by RSET, HELO/EHLO/LHLO and STARTTLS.
type Transaction struct {
	// HasMail is true once a MAIL FROM was accepted.
	HasMail bool
	// From is the reverse-path address ("" for the null path).
	From string
	// MailParams are the registered MAIL FROM parameters.
	MailParams Params
	// Rcpts are the accepted recipients, in go-smtp's order.
	Rcpts []Recipient
}

// Recipient is one accepted RCPT TO.
type Recipient struct {
	// To is the forward-path address as go-smtp parsed it.
	To string
	// Params are the registered RCPT TO parameters.
	Params Params
}

// Info gives a go-smtp session access to what the layer knows about its
// connection. Obtain it with FromConn.
type Info struct{ c *conn }

// FromConn returns the layer's view of a go-smtp connection, or nil when
// c is not served through a smtpext Server. A Session typically calls it
// in Backend.NewSession and keeps the result; it stays valid for that
// go-smtp connection (STARTTLS makes a new one).
func FromConn(c *smtp.Conn) *Info {
	if c == nil {
		return nil
	}
	lc, ok := c.Conn().(*conn)
	if !ok {
		return nil
	}
	return &Info{c: lc}
}

// ConnInfo returns the connection's current state.
func (i *Info) ConnInfo() ConnInfo { return i.c.connInfo() }

// TLS returns the TLS state of the connection (go-smtp's
// Conn.TLSConnectionState cannot see the layer's TLS).
func (i *Info) TLS() (tls.ConnectionState, bool) {
	if i.c.tls == nil {
		return tls.ConnectionState{}, false
	}
	return *i.c.tls, true
}

// RemoteAddr returns the client's address.
func (i *Info) RemoteAddr() net.Addr { return i.c.RemoteAddr() }

// Listener returns the name of the listener the client connected to.
func (i *Info) Listener() string { return i.c.l.cfg.Name }

// CommandParams returns the registered parameters of the MAIL FROM or
// RCPT TO command go-smtp is processing: call it from Session.Mail or
// Session.Rcpt. They join Transaction only once go-smtp answered 250.
func (i *Info) CommandParams() Params {
	i.c.mu.Lock()
	defer i.c.mu.Unlock()
	return i.c.cur
}

// Transaction returns a snapshot of the current transaction. Call it at
// the start of Session.Data (or LMTPData): the layer clears its copy as
// soon as go-smtp replies to the message.
func (i *Info) Transaction() Transaction {
	i.c.mu.Lock()
	defer i.c.mu.Unlock()
	tx := i.c.tx
	tx.Rcpts = tx.Rcpts[:len(tx.Rcpts):len(tx.Rcpts)]
	return tx
}
