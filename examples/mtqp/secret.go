package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"strings"

	"github.com/msgtrack/msgtrack/idgen"
	"github.com/msgtrack/msgtrack/mtrk"
)

// maxInputFile bounds every file the command reads (secrets, a sent
// message's header): enough for any header, small enough not to matter.
const maxInputFile = 1 << 20

// secretFlags are the flags that say where the tracking secret A comes
// from: given (-secret, -secret-file) or recomputed on the SHA-1 path
// (-message-id and -date, or -message; plus -general-secret or
// -general-secret-file).
type secretFlags struct {
	secret, secretFile           string
	messageID, date, messageFile string
	dateSet                      bool
	general, generalFile         string
	envid                        string
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// opener opens the files named on the command line; "-" is stdin.
type opener struct {
	stdin io.Reader
	used  bool // stdin already claimed by another flag
}

func (o *opener) read(flagName, name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		if o.used {
			return nil, usagef("%s: standard input is already used by another flag", flagName)
		}
		o.used = true
		r = o.stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flagName, err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxInputFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	if len(b) > maxInputFile {
		return nil, fmt.Errorf("%s: %s is larger than %d bytes", flagName, name, maxInputFile)
	}
	return b, nil
}

// resolve returns the envelope ID and the secret A the flags describe.
// Every error it returns is the user's input (a flag, a value, a file they
// named) and ends the command with exit status 2 before any connection.
func (sf *secretFlags) resolve(o *opener) (envid string, secret mtrk.Secret, err error) {
	given := sf.secret != "" || sf.secretFile != ""
	recompute := sf.messageID != "" || sf.dateSet || sf.messageFile != "" || sf.general != "" || sf.generalFile != ""
	switch {
	case given && recompute:
		return "", nil, usagef("give the secret (-secret, -secret-file) or what recomputes it (-message-id, -date, -message, -general-secret, -general-secret-file), not both")
	case sf.secret != "" && sf.secretFile != "":
		return "", nil, usagef("-secret and -secret-file are exclusive")
	case !given && !recompute:
		return "", nil, usagef("no secret: give -secret, -secret-file, or -message-id (or -message) with -general-secret (or -general-secret-file)")
	}
	if given {
		text := sf.secret
		if sf.secretFile != "" {
			b, err := o.read("-secret-file", sf.secretFile)
			if err != nil {
				return "", nil, err
			}
			text = string(b)
		}
		s, err := mtrk.ParseSecret(text)
		if err != nil {
			return "", nil, usagef("secret: %v", err)
		}
		if sf.envid == "" {
			return "", nil, usagef("-envid is required with -secret or -secret-file")
		}
		return sf.envid, s, nil
	}

	// The SHA-1 path: A = SHA1(canon(Message-ID) || canon(Date) || G).
	msgID, date := sf.messageID, sf.date
	switch {
	case sf.messageFile != "" && (sf.messageID != "" || sf.dateSet):
		return "", nil, usagef("-message reads Message-ID and Date itself; do not add -message-id or -date")
	case sf.messageFile != "":
		b, err := o.read("-message", sf.messageFile)
		if err != nil {
			return "", nil, err
		}
		msgID, date, err = headerFields(b)
		if err != nil {
			return "", nil, fmt.Errorf("-message %s: %w", sf.messageFile, err)
		}
	case sf.messageID == "":
		return "", nil, usagef("-message-id (or -message) is required to recompute the secret")
	}
	var general []byte
	switch {
	case sf.general != "" && sf.generalFile != "":
		return "", nil, usagef("-general-secret and -general-secret-file are exclusive")
	case sf.general != "":
		g, err := decodeBase64(sf.general)
		if err != nil {
			return "", nil, usagef("-general-secret: not base64: %v", err)
		}
		general = g
	case sf.generalFile != "":
		b, err := o.read("-general-secret-file", sf.generalFile)
		if err != nil {
			return "", nil, err
		}
		general = trimOneNewline(b)
	default:
		return "", nil, usagef("-general-secret or -general-secret-file is required to recompute the secret")
	}
	s, err := idgen.ComputeSecret(msgID, date, general)
	if err != nil {
		return "", nil, usagef("recomputing the secret: %v", err)
	}
	envid = sf.envid
	if envid == "" {
		envid, err = idgen.DeriveEnvelopeID(msgID)
		if err != nil {
			return "", nil, usagef("deriving the envelope ID from the Message-ID: %v", err)
		}
	}
	return envid, s, nil
}

// headerFields returns the bodies of the first Message-ID and the first
// Date field of a message's header (RFC 5322 section 3.6), unfolded; the
// body of the message is not read. The values go through idgen's
// canonicalisation afterwards, so unfolding here changes nothing in the
// result.
func headerFields(b []byte) (msgID, date string, err error) {
	m, err := mail.ReadMessage(bytes.NewReader(b))
	if err != nil {
		return "", "", fmt.Errorf("reading the header: %w", err)
	}
	msgID = m.Header.Get("Message-Id")
	if strings.TrimSpace(msgID) == "" {
		return "", "", errors.New("the header has no Message-ID field")
	}
	date = m.Header.Get("Date")
	// A stray CR (a file cut after one, say) survives the header reader;
	// idgen would refuse it later with a less helpful message.
	if _, err := idgen.Canonical(msgID); err != nil {
		return "", "", fmt.Errorf("the Message-ID field: %w", err)
	}
	if _, err := idgen.Canonical(date); err != nil {
		return "", "", fmt.Errorf("the Date field: %w", err)
	}
	return msgID, date, nil
}

// decodeBase64 accepts standard base64 with or without padding, and
// ignores surrounding white space.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, "=") {
		return base64.StdEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// trimOneNewline drops one final LF or CRLF, which an editor or echo adds.
func trimOneNewline(b []byte) []byte {
	if bytes.HasSuffix(b, []byte("\r\n")) {
		return b[:len(b)-2]
	}
	return bytes.TrimSuffix(b, []byte("\n"))
}
