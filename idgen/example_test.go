package idgen_test

import (
	"context"
	"fmt"

	"github.com/msgtrack/msgtrack/idgen"
)

// A submission server generates the identifier of a message that arrived
// without MTRK, at the end of DATA.
func ExampleGenerator_Generate() {
	g := idgen.New(idgen.Options{
		// In production: ldapsecret.New(...) with the attribute named by
		// ldap_attr_auth_recall_secret.
		Source: idgen.StaticSource{"alice": []byte("0123456789abcdef0123456789abcdef")},
	})
	ctx := context.Background()

	res, _ := g.Generate(ctx, idgen.Input{
		User:      "alice",
		MessageID: " <20260801123456.A1B2C3@mail.example.com>",
		Date:      " Sat, 1 Aug 2026\r\n 12:34:56 +0200",
		UniqueID:  "4F3a9Zq1@mx1.example.com",
	})
	fmt.Println(res.Path, res.Certifier, res.EnvelopeID)

	res, _ = g.Generate(ctx, idgen.Input{
		MessageID: " <20260801123457.B@mail.example.com>",
		UniqueID:  "4F3a9Zq2@mx1.example.com",
	})
	fmt.Println(res.Path, res.Certifier, res.Reason)
	// Output:
	// sha1 OA78niVTivgNZPholvpuD2W6WNU 20260801123456.A1B2C3@mail.example.com
	// md4 qttQtIVrctuSnLyExbFkvw unauthenticated
}

// A tracking client recomputes the secret from the user's sent copy and
// the general recall secret, then queries with (ENVID, A).
func ExampleComputeSecret() {
	general := []byte("0123456789abcdef0123456789abcdef")
	mid := "<20260801123456.A1B2C3@mail.example.com>"
	a, err := idgen.ComputeSecret(mid, "Sat, 1 Aug 2026 12:34:56 +0200", general)
	if err != nil {
		fmt.Println(err)
		return
	}
	envid, _ := idgen.DeriveEnvelopeID(mid)
	fmt.Println("A:", a)
	fmt.Println("B:", a.Certifier())
	fmt.Println("ENVID:", envid)

	_, err = idgen.ComputeSecret(mid, "", []byte("too short"))
	fmt.Println(err)
	// Output:
	// A: 4duffuQGNTzSaHqQRNq55Y74lro
	// B: OA78niVTivgNZPholvpuD2W6WNU
	// ENVID: 20260801123456.A1B2C3@mail.example.com
	// idgen: general recall secret shorter than 128 bits (9 bytes)
}

func ExampleDeriveEnvelopeID() {
	id, _ := idgen.DeriveEnvelopeID(" <a.b+c@example.com>\r\n")
	fmt.Println(id)
	// Output: a.b+c@example.com
}

func ExampleMD4Identifier() {
	fmt.Printf("%x %s\n", []byte(idgen.MD4Identifier("abc")), idgen.MD4Identifier("abc"))
	// Output: a448017aaf21d8525fc10ae87aa6729d pEgBeq8h2FJfwQroeqZynQ
}

// A client that tracks its own messages draws a random secret.
func ExampleRandom() {
	a, b, err := idgen.Random()
	if err != nil {
		panic(err)
	}
	fmt.Println(len(a), b.Verify(a))
	// Output: 20 true
}
