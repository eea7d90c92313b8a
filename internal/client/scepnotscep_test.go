package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
)

// A server that does not speak SCEP (a web server's page, a plain-text
// banner, a truncated or foreign body) is named as such, with its content
// type and first bytes: not read as offering no cipher but single DES,
// with the advice to allow it, nor refused in the CMS parser's words
// (r101 D6). Real capability lists, with CRLF and spaces, still read.
func TestSCEPNotASCEPServerIsNamed(t *testing.T) {
	later := trustNow.Add(24 * time.Hour)
	root := issue(t, "root", nil, true, later)
	certsOnly, err := cms.DegenerateCertificates(nil)
	if err != nil {
		t.Fatal(err)
	}
	const page = "<html><body>It works!</body></html>"
	const notSCEP = "the server does not look like a SCEP server: it answered with Content-Type "
	for _, tt := range []struct {
		name           string
		capsType, caps string
		certType, cert string
		wantCaps       []string // in GetCACaps's error; nil: it succeeds
		wantCert       []string // in GetCACert's error; nil: it succeeds
		wantAlg        []string // in Algorithms's error; nil: it succeeds
	}{
		{"an HTML page", "text/html", page, "text/html", page,
			[]string{"GetCACaps: " + notSCEP + "text/html and a body of 35 bytes starting \"" + page + "\", not a list of capabilities"},
			[]string{"GetCACert: " + notSCEP + "text/html and a body of 35 bytes starting \"" + page + "\", not a DER certificate or a PKCS#7 certs-only"}, nil},
		{"a plain-text banner", "text/plain", "It works!\n", "", "It works!\n",
			[]string{notSCEP + "text/plain and a body of 10 bytes starting \"It works!\\n\""},
			[]string{notSCEP + "none and a body of 10 bytes starting \"It works!\\n\""}, nil},
		{"an HTML page with a caps-like body", "text/html; charset=utf-8", "AES\n", "application/x-x509-ca-cert", "\x1b[2Jgarbage",
			[]string{notSCEP + "text/html; charset=utf-8 and a body of 4 bytes"},
			[]string{notSCEP + "application/x-x509-ca-cert and a body of 11 bytes starting \"\\x1b[2Jgarbage\""}, nil},
		{"a long body", "text/plain", strings.Repeat("x ", 100), "application/x-x509-ca-ra-cert", string(certsOnly[:len(certsOnly)-1]),
			[]string{"a body of 200 bytes starting \"" + strings.Repeat("x ", 24) + "…\""},
			[]string{notSCEP + "application/x-x509-ca-ra-cert and a body of"}, nil},
		{"words, none a capability", "text/plain", "OK\n", "application/x-x509-ca-cert", string(root.cert.Raw),
			nil, nil, []string{"the server's GetCACaps lists none of RFC 8894's capabilities (ok): check that the URL is the SCEP server's"}},
		{"capabilities with CRLF and spaces", "text/plain", " AES\r\nPOSTPKIOperation \r\nSHA-256\r\n", "application/x-x509-ca-cert", string(root.cert.Raw),
			nil, nil, nil},
		{"no capabilities at all", "text/plain", "", "application/x-x509-ca-cert", string(root.cert.Raw),
			nil, nil, []string{"pass --allow-insecure-des to use it anyway"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ct, body := tt.capsType, tt.caps
				if r.URL.Query().Get("operation") == "GetCACert" {
					ct, body = tt.certType, tt.cert
				}
				w.Header()["Content-Type"] = []string{ct}
				if ct == "" {
					w.Header()["Content-Type"] = nil // none, not Go's guess
				}
				w.Write([]byte(body))
			}))
			defer srv.Close()
			sc := &SCEP{URL: srv.URL + "/scep", Now: func() time.Time { return trustNow }}
			check := func(op string, err error, want []string) {
				t.Helper()
				if want == nil {
					if err != nil {
						t.Errorf("%s: %v", op, err)
					}
					return
				}
				if err == nil {
					t.Errorf("%s succeeded, want %q", op, want)
					return
				}
				for _, w := range want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: %v\nwant it to say %q", op, err, w)
					}
				}
				for _, not := range []string{"cms:", "malformed", "x509:"} {
					if strings.Contains(err.Error(), not) {
						t.Errorf("%s: %v: a parser's own words", op, err)
					}
				}
				if strings.Contains(err.Error(), "does not look like") && strings.Contains(err.Error(), "allow-insecure-des") {
					t.Errorf("%s: %v: advice to allow single DES for no SCEP server", op, err)
				}
			}
			caps, err := sc.GetCACaps(context.Background())
			check("GetCACaps", err, tt.wantCaps)
			_, err = sc.GetCACert(context.Background())
			check("GetCACert", err, tt.wantCert)
			if tt.wantCaps == nil {
				_, _, err = sc.Algorithms(caps)
				check("Algorithms", err, tt.wantAlg)
			}
		})
	}
}
