package maildir_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/msgtrack/msgtrack/examples/refmta/internal/maildir"
)

func ExampleMaildir_Deliver() {
	root, _ := os.MkdirTemp("", "maildir")
	defer os.RemoveAll(root)
	m, _ := maildir.New(root, maildir.Options{Hostname: "mx.example.org"})
	path, err := m.Deliver(context.Background(), "bob", strings.NewReader("Subject: hi\r\n\r\nHello.\r\n"))
	if err != nil {
		panic(err)
	}
	rel, _ := filepath.Rel(root, filepath.Dir(path))
	fmt.Println(rel)
	_, err = m.Deliver(context.Background(), "../etc", strings.NewReader("x"))
	fmt.Println(err)
	// Output:
	// bob/new
	// maildir: delivering to "../etc": maildir: invalid user name: misplaced dot in "../etc"
}
