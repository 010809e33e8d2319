package testenv

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Fixed names of the test directory tree that StartSlapd creates.
const (
	// SlapdSuffix is the directory suffix (base DN) of the test server.
	SlapdSuffix = "dc=msgtrack,dc=test"
	// SlapdPeople is the container the helper creates for user entries.
	SlapdPeople = "ou=people," + SlapdSuffix
	// SlapdBindDN is the administrator DN; its password is SlapdBindPassword.
	SlapdBindDN = "cn=admin," + SlapdSuffix
	// SlapdBindPassword is the password of SlapdBindDN.
	SlapdBindPassword = "msgtrack-test-password"
	// RecallSecretAttr is an attribute type defined by the test schema for
	// a user's general recall secret (binary, octet string syntax), carried
	// by the auxiliary object class RecallSecretClass.
	RecallSecretAttr = "msgtrackRecallSecret"
	// RecallSecretClass is the auxiliary object class allowing
	// RecallSecretAttr.
	RecallSecretClass = "msgtrackUser"
)

// The OIDs below are under an arc that is not registered to this project;
// they exist only inside test servers.
const testSchema = `attributetype ( 1.3.6.1.4.1.99999.4865.1.1 NAME '` + RecallSecretAttr + `'
	DESC 'msgtrack test: general recall secret'
	EQUALITY octetStringMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )
objectclass ( 1.3.6.1.4.1.99999.4865.2.1 NAME '` + RecallSecretClass + `'
	DESC 'msgtrack test: user with a general recall secret'
	SUP top AUXILIARY
	MAY ( ` + RecallSecretAttr + ` ) )
`

const baseLDIF = `dn: ` + SlapdSuffix + `
objectClass: dcObject
objectClass: organization
dc: msgtrack
o: msgtrack test

dn: ` + SlapdPeople + `
objectClass: organizationalUnit
ou: people

`

// SlapdOptions tune StartSlapd.
type SlapdOptions struct {
	// LDIF is loaded after the suffix and SlapdPeople entries exist.
	LDIF string
	// TLS also starts an ldaps:// listener and enables StartTLS on the
	// ldap:// one, with a certificate generated for 127.0.0.1 whose pool
	// is in Slapd.RootCAs.
	TLS bool
}

// Slapd is a real OpenLDAP slapd process on loopback ports, with its
// configuration and database in a temporary directory.
type Slapd struct {
	t    testing.TB
	path string
	args []string
	// URL is the ldap:// URL of the server.
	URL string
	// LDAPSURL is the ldaps:// URL when SlapdOptions.TLS was set.
	LDAPSURL string
	// RootCAs verifies the server's certificate when TLS was set.
	RootCAs *x509.CertPool
	// BaseDN, BindDN and BindPassword describe the test tree.
	BaseDN, BindDN, BindPassword string

	addr string
	mu   sync.Mutex
	proc *process
}

// StartSlapd configures and starts slapd and stops it when the test ends.
// It skips (or fails, see Required) when slapd is not installed (Debian
// packages slapd and ldap-utils).
func StartSlapd(t testing.TB, opts SlapdOptions) *Slapd {
	t.Helper()
	path := LookPath(t, "slapd", "slapd")
	slapadd := LookPath(t, "slapadd", "slapd")
	schemaDir := "/etc/ldap/schema"
	if _, err := os.Stat(filepath.Join(schemaDir, "core.schema")); err != nil {
		msg := "slapd schema files missing in /etc/ldap/schema: install the Debian package \"slapd\""
		if Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("testenv: slapd setup: %v", err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "db"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "msgtrack.schema"), []byte(testSchema), 0o600))

	port := FreePort(t)
	s := &Slapd{
		t: t, path: path,
		addr:   net.JoinHostPort("127.0.0.1", itoa(port)),
		BaseDN: SlapdSuffix, BindDN: SlapdBindDN, BindPassword: SlapdBindPassword,
	}
	s.URL = "ldap://" + s.addr
	urls := s.URL + "/"

	var conf bytes.Buffer
	for _, f := range []string{"core", "cosine", "inetorgperson"} {
		fmt.Fprintf(&conf, "include %s/%s.schema\n", schemaDir, f)
	}
	fmt.Fprintf(&conf, "include %s/msgtrack.schema\n", dir)
	if _, err := os.Stat("/usr/lib/ldap/back_mdb.so"); err == nil {
		conf.WriteString("modulepath /usr/lib/ldap\nmoduleload back_mdb\n")
	}
	fmt.Fprintf(&conf, "pidfile %s/slapd.pid\nargsfile %s/slapd.args\n", dir, dir)
	if opts.TLS {
		certFile, keyFile, pool := writeTestCert(t, dir)
		s.RootCAs = pool
		fmt.Fprintf(&conf, "TLSCertificateFile %s\nTLSCertificateKeyFile %s\n", certFile, keyFile)
		tlsPort := FreePort(t)
		s.LDAPSURL = "ldaps://" + net.JoinHostPort("127.0.0.1", itoa(tlsPort))
		urls += " " + s.LDAPSURL + "/"
	}
	fmt.Fprintf(&conf, "database mdb\nmaxsize 67108864\nsuffix %q\nrootdn %q\nrootpw %s\ndirectory %s/db\n",
		SlapdSuffix, SlapdBindDN, SlapdBindPassword, dir)
	conf.WriteString("access to * by * read\n")
	confFile := filepath.Join(dir, "slapd.conf")
	must(os.WriteFile(confFile, conf.Bytes(), 0o600))

	ldifFile := filepath.Join(dir, "data.ldif")
	must(os.WriteFile(ldifFile, []byte(baseLDIF+opts.LDIF), 0o600))
	if out, err := exec.Command(slapadd, "-f", confFile, "-l", ldifFile).CombinedOutput(); err != nil {
		t.Fatalf("testenv: slapadd: %v\n%s", err, out)
	}
	s.args = []string{"-f", confFile, "-h", urls, "-d", "0"}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start starts slapd (again, after Stop) with the same configuration and
// data.
func (s *Slapd) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		select {
		case <-s.proc.exited:
		default:
			return
		}
	}
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		p, err := startProcess(s.path, s.args...)
		if err != nil {
			s.t.Fatalf("testenv: starting slapd: %v", err)
		}
		if err = waitListening(s.addr, p.exited, 15*time.Second); err == nil {
			s.proc = p
			return
		}
		p.stop()
		lastErr = &startError{err: err, output: p.out.String()}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("testenv: slapd did not start: %v", lastErr)
}

// Stop kills slapd; Start brings it back with its data.
func (s *Slapd) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.proc.stop()
}

// Addr is the host:port of the ldap:// listener.
func (s *Slapd) Addr() string { return s.addr }

// writeTestCert writes a self-signed certificate for 127.0.0.1 and
// localhost and returns the file names and a pool that trusts it.
func writeTestCert(t testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	cert, certPEM, keyPEM := SelfSignedCert(t, "127.0.0.1", "localhost")
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	return certFile, keyFile, pool
}

// SelfSignedCert makes a self-signed ECDSA P-256 certificate valid for the
// given host names and IP addresses, for test TLS servers. It returns the
// certificate (with Leaf set) and its PEM encodings.
func SelfSignedCert(t testing.TB, hosts ...string) (tls.Certificate, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: hosts[0], Organization: []string{"msgtrack test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cert.Leaf, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM, keyPEM
}
