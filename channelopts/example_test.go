package channelopts_test

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/msgtrack/msgtrack/channelopts"
)

func ExampleParseMTA() {
	const optionDat = `! tracking and recall
TRACKING_MODE=1
MEMCACHE_HOST=mc1.example.com, mc2.example.com:11311
TRACKING_RETRIES=3
LOG_TRACKING=1
`
	m, err := channelopts.ParseMTA(strings.NewReader(optionDat), "option.dat")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.TrackingMode, m.Retries(), m.RetryDelay())
	fmt.Println(m.MemcacheServers())
	fmt.Println(m.LogTracking.Has(channelopts.LogTransaction), m.LogTracking.Has(channelopts.LogActionProbe))
	// Output:
	// memcached 3 100ms
	// [mc1.example.com:11211 mc2.example.com:11311]
	// true false
}

func ExampleParseChannels() {
	const channels = `! submission
tcp_auth smtp mx maxjobs 7 trackingserver trackinggenerate 172800 \
  trackingtimeoutmin 3600
tcp_auth-daemon

tcp_local smtp mx trackingclient trackingrelayed trackingsingle
tcp-daemon
`
	chs, err := channelopts.ParseChannels(strings.NewReader(channels), "imta.cnf")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range chs {
		gen, ok := c.Generate()
		fmt.Println(c.Name, c.TrackingServer, c.TrackingClient, c.Disposition, c.AliasPolicy, gen, ok, c.TrackingLimits().Min)
	}
	// Output:
	// tcp_auth true false trackinginternal trackingmultiple 48h0m0s true 1h0m0s
	// tcp_local false true trackingrelayed trackingsingle 0s false 24h0m0s
}

func ExampleParseChannels_errors() {
	_, err := channelopts.ParseChannels(strings.NewReader("tcp_local trackingserver notrackingserver\n"), "imta.cnf")
	var pe *channelopts.Error
	if errors.As(err, &pe) {
		fmt.Println(pe.File, pe.Line, pe.Channel, pe.Keyword, errors.Is(err, channelopts.ErrContradiction))
	}
	fmt.Println(err)
	// Output:
	// imta.cnf 1 tcp_local notrackingserver true
	// imta.cnf:1: channel tcp_local: notrackingserver: contradictory keywords: contradicts trackingserver
}

func ExampleChannel_Timeout() {
	// Zero fields are the product's defaults.
	c := channelopts.Channel{TrackingServer: true}
	fmt.Println(c.Timeout(0, false))              // MTRK=B without a timeout
	fmt.Println(c.Timeout(600*time.Second, true)) // raised to trackingtimeoutmin
	fmt.Println(c.Timeout(60*24*time.Hour, true)) // lowered to trackingtimeoutmax
	// Output:
	// 72h0m0s
	// 24h0m0s
	// 336h0m0s
}

func ExampleFormatChannels() {
	out, err := channelopts.FormatChannels([]channelopts.Channel{
		{Name: "tcp_intranet", Hosts: []string{"tcp_intranet-daemon"}, TrackingServer: true, TrackingClient: true},
		{Name: "tcp_local", Hosts: []string{"tcp-daemon"}, TrackingClient: true, Disposition: channelopts.Relayed},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(out))
	// Output:
	// tcp_intranet trackingserver trackingclient
	// tcp_intranet-daemon
	//
	// tcp_local trackingclient trackingrelayed
	// tcp-daemon
}

func ExampleMTA_Format() {
	m := channelopts.MTA{TrackingMode: channelopts.ModeInMemory, TrackingRetries: new(0)}
	out, _ := m.Format()
	fmt.Print(string(out))
	// Output:
	// TRACKING_MODE=2
	// TRACKING_RETRIES=0
}
