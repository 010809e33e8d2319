package ldapsecret_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"time"

	"github.com/msgtrack/msgtrack/idgen"
	"github.com/msgtrack/msgtrack/idgen/ldapsecret"
)

// A submission server looks general recall secrets up in LDAP and feeds
// them to the Generator. (Not run: it needs a directory.)
func ExampleNew() {
	src, err := ldapsecret.New(ldapsecret.Config{
		URL:          "ldap://ldap.example.com",
		StartTLS:     true,
		TLSConfig:    &tls.Config{MinVersion: tls.VersionTLS12},
		BindDN:       "cn=mta,ou=services,dc=example,dc=com",
		BindPassword: "secret",
		BaseDN:       "ou=people,dc=example,dc=com",
		Filter:       "(&(objectClass=inetOrgPerson)(uid=%s))",
		Attribute:    "recallSecret", // ldap_attr_auth_recall_secret
		CacheTTL:     time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()

	g := idgen.New(idgen.Options{Source: src})
	res, err := g.Generate(context.Background(), idgen.Input{
		User:      "alice",
		MessageID: "<20260801123456.A1B2C3@mail.example.com>",
		Date:      "Sat, 1 Aug 2026 12:34:56 +0200",
		UniqueID:  "4F3a9Zq1@mx1.example.com",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Path, res.Reason, res.Certifier, res.EnvelopeID)
}
