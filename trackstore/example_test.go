package trackstore_test

import (
	"fmt"
	"strings"

	"github.com/msgtrack/msgtrack/trackstore"
)

func ExampleSafeKey() {
	// A tracking ID may hold any bytes; the key is valid everywhere.
	fmt.Println(trackstore.SafeKey("mt1", "20260101.abc@mx1"))
	fmt.Println(trackstore.SafeKey("mt1", "has space\r\n"))
	long := trackstore.SafeKey("mt1", strings.Repeat("x", 300))
	fmt.Println(long[:5], len(long))
	// Output:
	// mt1:MjAyNjAxMDEuYWJjQG14MQ
	// mt1:aGFzIHNwYWNlDQo
	// mt1:~ 48
}

func ExampleCheckKey() {
	fmt.Println(trackstore.CheckKey("mt1:abc"))
	fmt.Println(trackstore.CheckKey("mt1 abc"))
	// Output:
	// <nil>
	// trackstore: invalid key: byte 0x20 at offset 3
}
