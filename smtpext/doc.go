// Package smtpext adds ESMTP service extensions to a go-smtp server.
//
// placeholder; full documentation follows.
package smtpext
