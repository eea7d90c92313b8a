package client

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A PKIOperation answered with a web page, an empty body or other text (a
// proxy's or captive portal's 200) is named by its content type and first
// bytes, as GetCACaps and GetCACert do, not as a malformed CMS message
// (r117 D5); a body that starts as DER is left to the CertRep parser.
func TestSCEPPKIOperationThatIsNoCertRepIsNamed(t *testing.T) {
	const notSCEP = "PKIOperation: the server does not look like a SCEP server: it answered with Content-Type "
	for _, tt := range []struct {
		name, contentType, body string
		want                    string // in the error; "" for the body returned as it is
	}{
		{"an HTML page", "text/html", "<html>Gateway says hi</html>", notSCEP + `text/html and a body of 28 bytes starting "<html>Gateway says hi</html>", not a CertRep`},
		{"an empty body", "application/x-pki-message", "", notSCEP + "application/x-pki-message and an empty body, not a CertRep"},
		{"text", "text/plain", "request accepted\n", notSCEP + `text/plain and a body of 17 bytes starting "request accepted\n"`},
		{"an HTML page starting as DER would", "text/html", "0 errors", notSCEP + "text/html and a body of 8 bytes"},
		{"DER", "application/x-pki-message", "\x30\x03\x02\x01\x00", ""},
	} {
		for _, post := range []bool{true, false} {
			name := tt.name + map[bool]string{true: " (POST)", false: " (GET)"}[post]
			t.Run(name, func(t *testing.T) {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", tt.contentType)
					w.Write([]byte(tt.body))
				}))
				defer srv.Close()
				caps := Caps{}
				if post {
					caps["postpkioperation"] = true
				}
				body, err := (&SCEP{URL: srv.URL + "/scep"}).pkiOperation(context.Background(), caps, []byte{0x30, 0})
				switch {
				case tt.want == "" && (err != nil || !bytes.Equal(body, []byte(tt.body))):
					t.Fatalf("body %q, err %v; want the body as sent", body, err)
				case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
					t.Fatalf("err = %v, want one saying %q", err, tt.want)
				case tt.want != "" && (strings.Contains(err.Error(), "cms:") || strings.Contains(err.Error(), "malformed")):
					t.Errorf("err = %v: a parser's own words", err)
				}
			})
		}
	}
}
