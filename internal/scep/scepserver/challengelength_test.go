package scepserver_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/scep"
)

// A challengePassword longer than PKCS #9's 255 characters is refused
// badRequest naming that bound, where it was called "malformed" (r122);
// one of 255 characters, ASCII or not, is not refused for its length.
func TestChallengePasswordLength(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	tests := []struct {
		name      string
		challenge string
		want      string // the failInfoText; "" for any refusal but the length's
	}{
		{"256 characters", strings.Repeat("c", 256), "the challengePassword attribute is 256 characters long; PKCS #9 (RFC 2985) allows at most 255"},
		{"10 KB", strings.Repeat("c", 10240), "the challengePassword attribute is 10240 characters long; PKCS #9 (RFC 2985) allows at most 255"},
		{"255 characters", strings.Repeat("c", 255), ""},
		{"255 characters of two bytes", strings.Repeat("é", 255), ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, _ := ts.build(t, reqParams{key: testKey(t, i%4), challenge: tt.challenge, subject: fmt.Sprintf("CN=long-challenge-%d,O=Acme", i)})
			resp, body := ts.post(t, der)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP %d: %.300q", resp.StatusCode, body)
			}
			rep, err := scep.Parse(body)
			if err != nil {
				t.Fatal(err)
			}
			wantFailure(t, rep, scep.BadRequest)
			switch {
			case tt.want != "" && rep.FailInfoText != tt.want:
				t.Errorf("failInfoText %q,\nwant %q", rep.FailInfoText, tt.want)
			case tt.want == "" && (strings.Contains(rep.FailInfoText, "characters long") || strings.Contains(rep.FailInfoText, "malformed")):
				t.Errorf("refused for its length: %q", rep.FailInfoText)
			}
		})
	}
}
