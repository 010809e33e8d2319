package ldapsecret

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
)

func newTLSConfig(roots *x509.CertPool) *tls.Config { return &tls.Config{RootCAs: roots} }

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
