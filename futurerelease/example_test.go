package futurerelease_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/msgtrack/msgtrack/futurerelease"
)

func ExampleAdvertisement_String() {
	a := futurerelease.Advertisement{
		MaxInterval: 24 * time.Hour,
		MaxDateTime: time.Date(2026, 8, 3, 0, 0, 0, 0, time.UTC),
	}
	fmt.Println(a.String())
	fmt.Println(a.EHLOLine())
	// Output:
	// 86400 2026-08-03T00:00:00Z
	// FUTURERELEASE 86400 2026-08-03T00:00:00Z
}

func ExampleParseAdvertisement() {
	a, err := futurerelease.ParseAdvertisement("FUTURERELEASE   86400  2026-08-03t00:00:00z")
	fmt.Println(a, err)

	// A server that writes Unix time where RFC 4865 wants a date-time.
	a, err = futurerelease.ParseAdvertisement("1209600 999999999")
	fmt.Println(errors.Is(err, futurerelease.ErrUnixDateTime), a.MaxDateTime)
	// Output:
	// 86400 2026-08-03T00:00:00Z <nil>
	// true 2001-09-09 01:46:39 +0000 UTC
}

func ExampleParseDateTime() {
	for _, s := range []string{
		"1985-04-12t23:20:50.52z",   // lower case, fraction
		"1990-12-31T15:59:60-08:00", // leap second (RFC 3339 section 5.8)
	} {
		t, err := futurerelease.ParseDateTime(s)
		fmt.Println(futurerelease.FormatDateTime(t), err)
	}
	// Output:
	// 1985-04-12T23:20:50.52Z <nil>
	// 1991-01-01T00:00:00Z <nil>
}

func ExampleParseHoldFor() {
	d, err := futurerelease.ParseHoldFor("3600")
	fmt.Println(d, err)
	_, err = futurerelease.ParseHoldFor("1234567890")
	fmt.Println(err)
	// Output:
	// 1h0m0s <nil>
	// futurerelease: HOLDFOR is not 1 to 9 digits of seconds
}

func ExampleParseHoldUntil() {
	t, err := futurerelease.ParseHoldUntil("2026-08-03T02:00:00+02:00")
	fmt.Println(t, err)
	_, err = futurerelease.ParseHoldUntil("1785715200")
	fmt.Println(err)
	// Output:
	// 2026-08-03 00:00:00 +0000 UTC <nil>
	// futurerelease: HOLDUNTIL is an integer; it must be an RFC 3339 date-time
}

func ExampleValidate() {
	now := time.Date(2026, 8, 2, 12, 0, 0, 0, time.UTC)
	limits := futurerelease.Limits{MaxInterval: 24 * time.Hour}

	// At EHLO time:
	fmt.Println(limits.Advertise(now).EHLOLine())

	// MAIL FROM:<a@example.org> BODY=8BITMIME holdfor=3600
	params := []futurerelease.MailParam{{Name: "BODY", Value: "8BITMIME"}, {Name: "holdfor", Value: "3600"}}
	hold, present, err := futurerelease.Validate(params, limits, now)
	fmt.Println(present, err, hold.Name, hold.Until)
	fmt.Println(hold.Held(now.Add(59*time.Minute)), hold.Held(now.Add(time.Hour)))
	fmt.Println(hold.LogOffset(now.Add(15 * time.Minute)))

	// Both parameters: refused with the reply to send.
	params = append(params, futurerelease.MailParam{Name: "HOLDUNTIL", Value: "2026-08-02T18:00:00Z"})
	_, _, err = futurerelease.Validate(params, limits, now)
	var e *futurerelease.Error
	if errors.As(err, &e) {
		code, enh, msg := e.SMTPReply()
		fmt.Printf("%d %d.%d.%d %s\n", code, enh[0], enh[1], enh[2], msg)
	}
	// Output:
	// FUTURERELEASE 86400 2026-08-03T12:00:00Z
	// true <nil> HOLDFOR 2026-08-02 13:00:00 +0000 UTC
	// true false
	// 2700
	// 501 5.5.4 Invalid HOLDUNTIL parameter: cannot be combined with HOLDFOR
}

func ExampleLogOffset() {
	now := time.Date(2026, 8, 2, 12, 0, 0, 0, time.UTC)
	release := now.Add(90 * time.Minute)
	fmt.Println(futurerelease.LogOffset(release, now))
	fmt.Println(futurerelease.LogOffset(release, release.Add(time.Second)))
	fmt.Println(futurerelease.Remaining(release, now), futurerelease.Held(release, now))
	// Output:
	// 5400
	// 0
	// 1h30m0s true
}

func ExampleHold_DSNValue() {
	now := time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)
	h, _, _ := futurerelease.Validate(
		[]futurerelease.MailParam{{Name: "HOLDFOR", Value: "3600"}},
		futurerelease.Limits{MaxInterval: 24 * time.Hour}, now)
	fmt.Println(futurerelease.DSNField + ": " + h.DSNValue())
	// Output:
	// Future-Release-Request: for;3600
}

// A queue asks, at each scheduling pass, whether a message is still held
// and how long to wait; the release time is fixed when MAIL is accepted.
func ExampleReleaseTime() {
	accepted := time.Date(2026, 8, 2, 12, 0, 0, 0, time.UTC)
	release := futurerelease.ReleaseTime(accepted, 2*time.Hour) // HOLDFOR=7200
	for _, at := range []time.Time{accepted.Add(30 * time.Minute), release, release.Add(time.Minute)} {
		fmt.Println(at.Format("15:04"), futurerelease.Held(release, at), futurerelease.Remaining(release, at))
	}
	// Output:
	// 12:30 true 1h30m0s
	// 14:00 false 0s
	// 14:01 false 0s
}

// A submission server advertises its limits in its EHLO reply; with no
// fixed latest date the date advertised is now + the interval.
func ExampleLimits_Advertise() {
	now := time.Date(2026, 8, 2, 12, 0, 0, 0, time.UTC)
	l := futurerelease.Limits{MaxInterval: 7 * 24 * time.Hour}
	fmt.Println(l.Advertise(now).EHLOLine())
	fmt.Println(l.Latest(now.Add(time.Hour)).Format(time.RFC3339))
	// Output:
	// FUTURERELEASE 604800 2026-08-09T12:00:00Z
	// 2026-08-09T13:00:00Z
}
