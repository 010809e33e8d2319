package mtrk_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/msgtrack/msgtrack/mtrk"
)

func ExampleParseParam() {
	// What follows "MTRK=" in MAIL FROM.
	p, err := mtrk.ParseParam("Gh6m1Pqhyx3TbP4VRA6mCzGadWM:86400")
	if err != nil {
		panic(err)
	}
	fmt.Println(len(p.Certifier), p.Timeout, p.TimeoutGiven)
	fmt.Println(p.MailParam())
	// Output:
	// 20 24h0m0s true
	// MTRK=Gh6m1Pqhyx3TbP4VRA6mCzGadWM:86400
}

func ExampleParseParam_invalid() {
	_, err := mtrk.ParseParam("abc:abc")
	var e *mtrk.Error
	if errors.As(err, &e) {
		code, enh, msg := e.SMTPReply()
		fmt.Printf("%d %d.%d.%d %s\n", code, enh[0], enh[1], enh[2], msg)
	}
	fmt.Println(errors.Is(err, mtrk.ErrCertifier))
	// Output:
	// 501 5.5.4 Invalid MTRK parameter: certifier decodes to 2 bytes, not 16 to 64
	// true
}

func ExampleParseCertifier() {
	c, err := mtrk.ParseCertifier("Gh6m1Pqhyx3TbP4VRA6mCzGadWM")
	fmt.Println(len(c), err)
	_, err = mtrk.ParseCertifier("Gh6m1Pqhyx3TbP4VRA6mCzGadWM=")
	fmt.Println(err)
	// Output:
	// 20 <nil>
	// mtrk: certifier contains "=" (padding is not allowed in ESMTP parameters)
}

func ExampleParseSecret() {
	// A user pastes the secret from a tool that pads base64.
	a, err := mtrk.ParseSecret(" 3q2+7wAAAAAAAAAAAAAAAAAAAAA= ")
	if err != nil {
		panic(err)
	}
	fmt.Println(a.String())
	// The server stored only the certifier SHA1(A).
	stored := a.Certifier()
	fmt.Println(stored.Verify(a))
	// Output:
	// 3q2+7wAAAAAAAAAAAAAAAAAAAAA
	// true
}

func ExampleNewSecret() {
	a, err := mtrk.NewSecret() // kept by the submitter
	if err != nil {
		panic(err)
	}
	p := mtrk.Param{Certifier: a.Certifier(), Timeout: 3 * 24 * time.Hour, TimeoutGiven: true}
	wire := p.MailParam() // sent in MAIL FROM
	back, _ := mtrk.ParseParam(wire[len("MTRK="):])
	fmt.Println(back.Certifier.Verify(a))
	// Output: true
}

func ExampleOffered() {
	ehlo := []string{"PIPELINING", "mtrk", "SIZE 1000"}
	fmt.Println(mtrk.Offered(ehlo...))
	fmt.Println(mtrk.Offered("PIPELINING", "DSN"))
	// Output:
	// true
	// false
}

func ExampleLimits_Clamp() {
	l := mtrk.DefaultLimits
	fmt.Println(l.Clamp(0, false))                    // absent: default
	fmt.Println(l.Clamp(3600*time.Second, true))      // raised to the minimum
	fmt.Println(l.Clamp(999999999*time.Second, true)) // lowered to the maximum
	// Output:
	// 72h0m0s
	// 24h0m0s
	// 336h0m0s
}

func ExampleRemaining() {
	left, ok := mtrk.Remaining(86400*time.Second, 90*time.Minute)
	fmt.Println(left, ok)
	_, ok = mtrk.Remaining(60*time.Second, 2*time.Minute)
	fmt.Println(ok) // do not send MTRK to the next hop
	// Output:
	// 22h30m0s true
	// false
}
