package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// A serial, a whole number or a duration is read as written or refused
// with 422, as "zz" is: no 0x taken off a serial, no white space around
// one, no + before a number. A serial as openssl prints it (a leading
// zero, colons, capitals) is still one.
func TestNumbersAndSerialsReadAsWritten(t *testing.T) {
	e := newEnv(t)
	c, _ := e.Issue(t, "strict-serial")
	serial := c.SerialNumber.Text(16)
	var pairs []string
	for _, b := range append([]byte{0}, c.SerialNumber.Bytes()...) {
		pairs = append(pairs, fmt.Sprintf("%02X", b))
	}
	openssl := strings.Join(pairs, ":")
	for _, tc := range []struct {
		name         string
		method, path string
		body         string
		want         int
		says         string
	}{
		{"0x before a serial", "GET", "/api/v1/certificates/0x" + serial, "", 422, "0x"},
		{"0X before a serial", "GET", "/api/v1/certificates/0X" + serial + "/pem", "", 422, "0X"},
		{"a space after a serial", "GET", "/api/v1/certificates/" + serial + "%20", "", 422, "white space"},
		{"a space before a serial", "GET", "/api/v1/certificates/%20" + serial + "/der", "", 422, "white space"},
		{"a tab after a serial", "GET", "/api/v1/certificates/" + serial + "%09/chain", "", 422, "white space"},
		{"a + before a serial", "GET", "/api/v1/certificates/+" + serial, "", 422, "sign"},
		{"a colon first", "GET", "/api/v1/certificates/:" + serial, "", 422, "colon"},
		{"two colons", "GET", "/api/v1/certificates/" + serial[:2] + "::" + serial[2:], "", 422, "colon"},
		{"revoke 0x", "POST", "/api/v1/certificates/0x" + serial + "/revoke", `{"reason":"superseded"}`, 422, "0x"},
		{"unhold with a space", "POST", "/api/v1/certificates/" + serial + "%20/unhold", "", 422, "white space"},
		{"audit serial 0x", "GET", "/api/v1/audit?serial=0x" + serial, "", 422, "0x"},
		{"audit serial with a space", "GET", "/api/v1/audit?serial=" + serial + "%20", "", 422, "white space"},
		{"not hex", "GET", "/api/v1/certificates/zz", "", 422, "zz"},
		{"as openssl prints it", "GET", "/api/v1/certificates/" + openssl, "", 200, ""},
		{"as openssl prints it, PEM", "GET", "/api/v1/certificates/" + openssl + "/pem", "", 200, ""},
		{"in capitals", "GET", "/api/v1/certificates/" + strings.ToUpper(serial), "", 200, ""},
		{"audit serial as openssl prints it", "GET", "/api/v1/audit?serial=" + openssl, "", 200, ""},
		{"audit limit +5", "GET", "/api/v1/audit?limit=%2B5", "", 422, "whole number"},
		{"audit limit + read as a space", "GET", "/api/v1/audit?limit=+5", "", 422, "whole number"},
		{"audit before_id +5", "GET", "/api/v1/audit?before_id=%2B5", "", 422, "whole number"},
		{"certificates limit +5", "GET", "/api/v1/certificates?limit=%2B5", "", 422, "whole number"},
		{"requests limit +5", "GET", "/api/v1/requests?limit=%2B5", "", 422, "whole number"},
		{"challenges limit +5", "GET", "/api/v1/challenges?limit=%2B5", "", 422, "whole number"},
		{"dashboard days +5", "GET", "/api/v1/dashboard?days=%2B5", "", 422, "whole number"},
		{"limit 0x5", "GET", "/api/v1/audit?limit=0x5", "", 422, "whole number"},
		{"limit 5", "GET", "/api/v1/audit?limit=5", "", 200, ""},
		{"expiring_within +30d", "GET", "/api/v1/certificates?expiring_within=%2B30d", "", 422, "duration"},
		{"expiring_within +12h", "GET", "/api/v1/certificates?expiring_within=%2B12h", "", 422, "duration"},
		{"challenge ttl +1h", "POST", "/api/v1/challenges", `{"ttl":"+1h"}`, 422, "ttl"},
		{"challenge ttl +1d", "POST", "/api/v1/challenges", `{"ttl":"+1d"}`, 422, "ttl"},
	} {
		var body any
		if tc.body != "" {
			body = tc.body
		}
		before := auditCount(t, e)
		r := e.do(t, pki.RoleOperator, tc.method, tc.path, body)
		if r.status != tc.want {
			t.Errorf("%s: %d, want %d\n%s", tc.name, r.status, tc.want, r.body)
			continue
		}
		if tc.want != http.StatusOK {
			if !strings.Contains(errorOf(t, r), tc.says) {
				t.Errorf("%s: error %q, want it to say %q", tc.name, errorOf(t, r), tc.says)
			}
			if after := auditCount(t, e); after != before {
				t.Errorf("%s: %d audit events written by a refused call", tc.name, after-before)
			}
		}
	}
	if got, _ := e.Store.Certificate(t.Context(), e.Issuer().ID, serial); got.Status != pki.StatusValid {
		t.Errorf("refused calls left the certificate %s", got.Status)
	}
}
