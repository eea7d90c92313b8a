package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/est"
)

// A server that sends headers without end gets the reply refused once it
// passes maxReplyBytes, not the client's memory.
func TestESTEndlessHeaders(t *testing.T) {
	later := trustNow.Add(time.Hour)
	ca := issue(t, "ca", nil, true, later)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: trustNow.Add(-time.Hour),
		NotAfter: later, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leaf := issue(t, "unused", nil, false, later)
	der, err := x509.CreateCertificate(nil, tmpl, ca.cert, leaf.key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: leaf.key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sent := make(chan int64, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
			return
		}
		var n int64
		conn.Write([]byte("HTTP/1.1 200 OK\r\nX-Endless: "))
		chunk := []byte(strings.Repeat("a", 64<<10))
		for n < 64<<20 { // far more than the client may take

			if _, err := conn.Write(chunk); err != nil {
				break
			}
			n += int64(len(chunk))
		}
		sent <- n
	}()
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	c := &EST{URL: "https://" + ln.Addr().String(), Roots: roots, Timeout: 20 * time.Second, Now: func() time.Time { return trustNow }}
	_, err = c.CACerts(context.Background())
	if err == nil || !strings.Contains(err.Error(), "headers are larger than") {
		t.Fatalf("err = %v, want the reply's headers refused as too large", err)
	}
	ln.Close()
	// What the server wrote before the client hung up is what the client
	// took plus the sockets' buffers: far from all of it.
	if n := <-sent; n >= 32<<20 {
		t.Errorf("the server wrote %d bytes of headers before the client hung up", n)
	}
}

// csrAttrsServer is an EST server on 127.0.0.1 whose /csrattrs answers
// status and body; it returns a client for it.
func csrAttrsServer(t *testing.T, status int, body string, warnings *[]string) *EST {
	t.Helper()
	later := trustNow.Add(time.Hour)
	ca := issue(t, "ca", nil, true, later)
	leaf := issue(t, "unused", nil, false, later)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: trustNow.Add(-time.Hour),
		NotAfter: later, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(nil, tmpl, ca.cert, leaf.key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/est/csrattrs" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: leaf.key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	return &EST{URL: srv.URL, Roots: roots, Now: func() time.Time { return trustNow },
		Warnf: func(format string, args ...any) { *warnings = append(*warnings, fmt.Sprintf(format, args...)) }}
}

// CSR attributes are advice (RFC 7030 §4.5): a server that refuses them or
// sends nothing usable leaves the client enrolling without them, warned
// once, with the reason named once.
func TestESTAdvisoryCSRAttrs(t *testing.T) {
	// RFC 7030 §4.5.2's example: challengePassword, an ecPublicKey on
	// secp384r1, a macAddress extension, ecdsa-with-SHA384.
	const rfcExample = "MEEGCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMBYGCSqGSIb3DQEJDjEJBgcrBgEBAQEWBggqhkjOPQQDAw=="
	tests := []struct {
		name         string
		status       int
		body         string
		wantAttrs    int
		wantErr      string // of CSRAttrs; "" for none
		wantWarnings int
	}{
		{"501", http.StatusNotImplemented, "nope", 0, "csrattrs: HTTP 501: nope", 1},
		{"500", http.StatusInternalServerError, "oops", 0, "csrattrs: HTTP 500: oops", 1},
		{"401", http.StatusUnauthorized, "who?", 0, "csrattrs: HTTP 401: who?", 1},
		{"200 empty", http.StatusOK, "", 0, "", 0},
		{"200 blank", http.StatusOK, "\r\n", 0, "", 0},
		{"200 not base64", http.StatusOK, "%%%", 0, "csrattrs: ", 1},
		{"200 not csrattrs", http.StatusOK, "AQID", 0, "csrattrs: est: csrattrs is not a SEQUENCE", 1},
		{"204", http.StatusNoContent, "", 0, "", 0},
		{"404", http.StatusNotFound, "", 0, "", 0},
		{"200 RFC example", http.StatusOK, rfcExample, 4, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var warnings []string
			c := csrAttrsServer(t, tt.status, tt.body, &warnings)
			attrs, err := c.CSRAttrs(context.Background())
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("CSRAttrs: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) || strings.Count(err.Error(), "csrattrs:") != 1):
				t.Fatalf("CSRAttrs: err %v, want one that starts %q and names csrattrs once", err, tt.wantErr)
			}
			attrs, err = c.AdvisoryCSRAttrs(context.Background())
			if err != nil {
				t.Fatalf("AdvisoryCSRAttrs: %v, want only a warning", err)
			}
			if len(attrs) != tt.wantAttrs {
				t.Errorf("AdvisoryCSRAttrs: %d attributes, want %d", len(attrs), tt.wantAttrs)
			}
			if len(warnings) != tt.wantWarnings {
				t.Fatalf("warnings %q, want %d", warnings, tt.wantWarnings)
			}
			for _, w := range warnings {
				if !strings.Contains(w, tt.wantErr) || !strings.Contains(w, "without the server's CSR attributes") {
					t.Errorf("warning %q does not say %q and that the client goes on", w, tt.wantErr)
				}
			}
		})
	}
}

// A server that cannot be asked for its CSR attributes is no advice
// withheld: AdvisoryCSRAttrs returns the failure, naming the step that
// failed, within one timeout, so that the caller does not wait for the
// same server again to enroll.
func TestESTAdvisoryCSRAttrsUnreachable(t *testing.T) {
	const timeout = 300 * time.Millisecond
	// stalled accepts connections and never answers (nor completes a TLS
	// handshake).
	stalled := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { conn.Close() })
			}
		}()
		return ln.Addr().String()
	}
	// closed is an address where nothing listens.
	closed := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	// silent completes the TLS handshake and never answers the request.
	later := trustNow.Add(time.Hour)
	ca := issue(t, "ca", nil, true, later)
	leaf := issue(t, "unused", nil, false, later)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: trustNow.Add(-time.Hour),
		NotAfter: later, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(nil, tmpl, ca.cert, leaf.key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	silent := func(t *testing.T) string {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: leaf.key}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { conn.Close() })
				conn.(*tls.Conn).Handshake()
			}
		}()
		return ln.Addr().String()
	}
	tests := []struct {
		name string
		addr func(*testing.T) string
		want string
	}{
		{"nothing listens", closed, "connecting to "},
		{"TLS handshake stalls", stalled, "TLS handshake with 127.0.0.1:"},
		{"no reply", silent, "GET csrattrs timed out after 300ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var warnings []string
			c := &EST{URL: "https://" + tt.addr(t), Roots: roots, Timeout: timeout,
				Now:   func() time.Time { return trustNow },
				Warnf: func(format string, args ...any) { warnings = append(warnings, fmt.Sprintf(format, args...)) }}
			start := time.Now()
			attrs, err := c.AdvisoryCSRAttrs(context.Background())
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("AdvisoryCSRAttrs: %d attributes, err %v; want an error that starts %q", len(attrs), err, tt.want)
			}
			if took := time.Since(start); took > 10*timeout {
				t.Errorf("AdvisoryCSRAttrs took %s with a timeout of %s", took, timeout)
			}
			if len(warnings) != 0 {
				t.Errorf("warnings %q; the failure is the error, not advice withheld", warnings)
			}
		})
	}
}

func TestKeyAdviceOf(t *testing.T) {
	oid := func(o asn1.ObjectIdentifier) est.CSRAttr { return est.CSRAttr{OID: o} }
	value := func(v any) []byte { b, _ := asn1.Marshal(v); return b }
	ecAttr := func(curves ...asn1.ObjectIdentifier) est.CSRAttr {
		a := est.CSRAttr{OID: oidECPublicKey, Attribute: true}
		for _, c := range curves {
			a.Values = append(a.Values, value(c))
		}
		return a
	}
	tests := []struct {
		name     string
		attrs    []est.CSRAttr
		accepts  []string
		refuses  []string
		choose   string
		wantText string
	}{
		{"nothing", nil, []string{"p256", "p384", "rsa2048"}, nil, "", ""},
		{"channel binding only", []est.CSRAttr{oid(est.OIDChallengePassword)}, []string{"p256", "rsa4096"}, nil, "", ""},
		{"RFC 7030 example: P-384", []est.CSRAttr{oid(est.OIDChallengePassword), ecAttr(oidP384), oid(oidECDSASHA384)},
			[]string{"p384"}, []string{"p256", "rsa2048"}, "p384", "p384"},
		{"bare curve OID", []est.CSRAttr{oid(oidP384)}, []string{"p384"}, []string{"p256"}, "p384", "p384"},
		{"ecdsa-with-SHA384 alone", []est.CSRAttr{oid(oidECPublicKey), oid(oidECDSASHA384)}, []string{"p384"}, []string{"p256"}, "p384", "p384"},
		{"any EC", []est.CSRAttr{oid(oidECPublicKey)}, []string{"p256", "p384"}, []string{"rsa2048"}, "p256", "EC (P-256 or P-384)"},
		{"scepter's default profile", []est.CSRAttr{ecAttr(oidP256, oidP384), oid(oidECDSASHA256), oid(oidECDSASHA384), oid(oidRSAEncryption), oid(oidSHA256WithRSA)},
			[]string{"p256", "p384", "rsa2048", "rsa3072"}, nil, "p256", "p256, p384, RSA"},
		{"RSA only", []est.CSRAttr{oid(oidRSAEncryption), oid(oidSHA256WithRSA)}, []string{"rsa2048", "rsa4096"}, []string{"p256"}, "rsa2048", "RSA"},
		{"RSA 3072", []est.CSRAttr{{OID: oidRSAEncryption, Attribute: true, Values: [][]byte{value(3072)}}}, []string{"rsa3072"}, []string{"rsa2048", "p256"}, "rsa3072", "rsa3072"},
		{"P-521 only", []est.CSRAttr{ecAttr(oidP521), oid(oidECDSASHA512)}, nil, []string{"p256", "p384", "rsa2048"}, "", "secp521r1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			adv := KeyAdviceOf(tt.attrs)
			for _, kt := range tt.accepts {
				if !adv.Accepts(kt) {
					t.Errorf("%+v refuses %s", adv, kt)
				}
			}
			for _, kt := range tt.refuses {
				if adv.Accepts(kt) {
					t.Errorf("%+v accepts %s", adv, kt)
				}
			}
			if got := adv.Choose(); got != tt.choose {
				t.Errorf("Choose() = %q, want %q", got, tt.choose)
			}
			if got := adv.String(); got != tt.wantText {
				t.Errorf("String() = %q, want %q", got, tt.wantText)
			}
		})
	}
}

// Interim answers (100 Continue, 103 Early Hints) come before the real one,
// asked for or not (RFC 9110 section 15.2): the client reads past them.
func TestESTInterimResponses(t *testing.T) {
	later := trustNow.Add(time.Hour)
	ca := issue(t, "ca", nil, true, later)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: trustNow.Add(-time.Hour),
		NotAfter: later, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leaf := issue(t, "unused", nil, false, later)
	der, err := x509.CreateCertificate(nil, tmpl, ca.cert, leaf.key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	certsOnly, err := cms.DegenerateCertificates([]*x509.Certificate{ca.cert})
	if err != nil {
		t.Fatal(err)
	}
	body := est.EncodeBase64(certsOnly)
	final := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/pkcs7-mime\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	for name, interim := range map[string]string{
		"none":                  "",
		"100 Continue":          "HTTP/1.1 100 Continue\r\n\r\n",
		"103 Early Hints":       "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
		"100 then 102 then 103": "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: leaf.key}}})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
					return
				}
				io.WriteString(conn, interim+final)
			}()
			roots := x509.NewCertPool()
			roots.AddCert(ca.cert)
			c := &EST{URL: "https://" + ln.Addr().String(), Roots: roots, Timeout: 20 * time.Second, Now: func() time.Time { return trustNow }}
			certs, err := c.CACerts(context.Background())
			if err != nil {
				t.Fatalf("cacerts after %q: %v", name, err)
			}
			if len(certs) != 1 || !certs[0].Equal(ca.cert) {
				t.Errorf("cacerts returned %d certificates, want the CA", len(certs))
			}
		})
	}
}

// The EST URL is the server, optionally with a label, optionally spelt
// with the /.well-known/est prefix.
func TestESTURL(t *testing.T) {
	for url, want := range map[string]string{
		"https://ca.example":                            "https://ca.example/.well-known/est/",
		"https://ca.example:8443/":                      "https://ca.example:8443/.well-known/est/",
		"https://ca.example/iot":                        "https://ca.example/.well-known/est/iot/",
		"https://ca.example/.well-known/est":            "https://ca.example/.well-known/est/",
		"https://ca.example/.well-known/est/":           "https://ca.example/.well-known/est/",
		"https://ca.example/.well-known/est/iot":        "https://ca.example/.well-known/est/iot/",
		"https://ca.example/.well-known/est/iot/":       "https://ca.example/.well-known/est/iot/",
		"https://ca.example/.well-known/estx":           "", // not label "x"
		"https://ca.example/.well-known/est/a/b":        "",
		"http://ca.example/.well-known/est":             "",
		"https://ca.example/.well-known/est-iot/thing/": "",
		"https://fleet:secretpw@ca.example/iot":         "", // credentials have flags of their own
		"https://ca.example/.well-known/est?tenant=iot": "", // a query would be dropped
		"https://ca.example/.well-known/est/iot?":       "",
		"https://ca.example/.well-known/est/iot#x":      "",
		"https://ca.example/.well-known/est/iot#":       "", // an empty fragment too (r100 D1)
	} {
		c := &EST{URL: url}
		base, err := c.parseURL()
		got := ""
		if err == nil {
			got = base.String()
		}
		if got != want {
			t.Errorf("%s: base %q (err %v), want %q", url, got, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secretpw") {
			t.Errorf("%s: the refusal shows the password: %v", url, err)
		}
	}
}

// A reply body beyond what the client reads is refused, not cut short and
// read as if it were all of it.
func TestESTOversizedReply(t *testing.T) {
	later := trustNow.Add(time.Hour)
	ca := issue(t, "ca", nil, true, later)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: trustNow.Add(-time.Hour),
		NotAfter: later, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leaf := issue(t, "unused", nil, false, later)
	der, err := x509.CreateCertificate(nil, tmpl, ca.cert, leaf.key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	certsOnly, err := cms.DegenerateCertificates([]*x509.Certificate{ca.cert})
	if err != nil {
		t.Fatal(err)
	}
	encoded := est.EncodeBase64(certsOnly)
	for name, tc := range map[string]struct {
		padding int // line breaks after the base64, which a reader skips
		ok      bool
	}{
		"within the bound": {maxReplyBodyBytes - len(encoded), true},
		"one byte over":    {maxReplyBodyBytes - len(encoded) + 1, false},
		"far over":         {2 * maxReplyBodyBytes, false},
	} {
		t.Run(name, func(t *testing.T) {
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: leaf.key}}})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
					return
				}
				body := append(bytes.Clone(encoded), bytes.Repeat([]byte("\n"), tc.padding)...)
				fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/pkcs7-mime\r\nContent-Length: %d\r\n\r\n", len(body))
				conn.Write(body)
			}()
			roots := x509.NewCertPool()
			roots.AddCert(ca.cert)
			c := &EST{URL: "https://" + ln.Addr().String(), Roots: roots, Timeout: 20 * time.Second, Now: func() time.Time { return trustNow }}
			_, err = c.CACerts(context.Background())
			switch {
			case tc.ok && err != nil:
				t.Fatalf("cacerts: %v", err)
			case !tc.ok && (err == nil || !strings.Contains(err.Error(), "body is larger than")):
				t.Fatalf("err = %v, want the reply refused as too large", err)
			}
		})
	}
}
