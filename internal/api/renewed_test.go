package api_test

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// listedItem is what these tests read of a list's item.
type listedItem struct {
	Serial          string `json:"serial"`
	Renewed         bool   `json:"renewed"`
	RenewalSerial   string `json:"renewal_serial"`
	RenewalIssuerID string `json:"renewal_issuer_id"`
}

// Every listed certificate says whether a renewal replaced it, and which
// (the newest); renewed=false leaves those out, with expiring_within and
// every other filter, and renewed=true keeps them alone.
func TestListMarksRenewed(t *testing.T) {
	e := newEnv(t)
	a, _ := e.Issue(t, "renew-a")
	b, _ := e.Issue(t, "renew-b")
	keep, _ := e.Issue(t, "renew-keep")
	// Inside the renewal window (the last third of a year's lifetime).
	e.Clock.Advance(300 * 24 * time.Hour)
	a2, _ := e.Renew(t, a, "renew-a")
	b2, _ := e.Renew(t, b, "renew-b")
	b3, _ := e.Renew(t, b, "renew-b")
	serial := func(i int) string {
		return []string{a.SerialNumber.Text(16), b.SerialNumber.Text(16), keep.SerialNumber.Text(16),
			a2.SerialNumber.Text(16), b2.SerialNumber.Text(16), b3.SerialNumber.Text(16)}[i]
	}
	const (
		iA, iB, iKeep, iA2, iB2, iB3 = 0, 1, 2, 3, 4, 5
	)
	renewal := map[string]string{serial(iA): serial(iA2), serial(iB): serial(iB3)}
	issuer := e.Issuer().ID
	for _, tc := range []struct {
		query string
		want  []int // in the list's order
	}{
		{"", []int{iB3, iB2, iA2, iKeep, iB, iA}},
		{"expiring_within=90d", []int{iA, iB, iKeep}},
		{"expiring_within=90d&renewed=false", []int{iKeep}},
		{"expiring_within=90d&renewed=true", []int{iA, iB}},
		{"renewed=false", []int{iB3, iB2, iA2, iKeep}},
		{"renewed=true&status=valid", []int{iB, iA}},
		{"renewed=false&q=renew-b", []int{iB3, iB2}},
		{"renewed=true&q=renew-b&profile=default", []int{iB}},
		{"renewed=false&protocol=scep", []int{iB3, iB2, iA2}},
		{"renewed=false&issued_after=" + url.QueryEscape(e.Clock.Now().Add(-time.Hour).Format(time.RFC3339)), []int{iB3, iB2, iA2}},
		{"renewed=false&status=revoked", []int{}},
	} {
		got := []string{}
		var items []listedItem
		for cursor := ""; ; {
			r := e.do(t, pki.RoleAuditor, "GET", "/api/v1/certificates?limit=2&"+tc.query+cursor, nil)
			if r.status != 200 {
				t.Fatalf("%s: %d\n%s", tc.query, r.status, r.body)
			}
			var page struct {
				Items      []listedItem `json:"items"`
				NextCursor string       `json:"next_cursor"`
			}
			r.json(t, &page)
			items = append(items, page.Items...)
			if page.NextCursor == "" {
				break
			}
			cursor = "&cursor=" + url.QueryEscape(page.NextCursor)
		}
		for _, it := range items {
			got = append(got, it.Serial)
			want := listedItem{Serial: it.Serial, Renewed: renewal[it.Serial] != "", RenewalSerial: renewal[it.Serial]}
			if want.Renewed {
				want.RenewalIssuerID = issuer
			}
			if it != want {
				t.Errorf("%s: item %+v, want %+v", tc.query, it, want)
			}
		}
		want := []string{}
		for _, i := range tc.want {
			want = append(want, serial(i))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s lists %q, want %q", tc.query, got, want)
		}
	}
}

// A renewed filter that is neither true nor false is refused naming the
// parameter, and a cursor of one renewed filter does not page another.
func TestListRenewedRefusals(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.Issue(t, "refusal-"+string(rune('a'+i)))
	}
	for _, v := range []string{"yes", "FALSE", "0", "true "} {
		r := e.do(t, pki.RoleAuditor, "GET", "/api/v1/certificates?renewed="+url.QueryEscape(v), nil)
		if r.status != 422 || !strings.Contains(errorOf(t, r), "renewed") {
			t.Errorf("renewed=%q: %d %s, want 422 naming renewed", v, r.status, r.body)
		}
	}
	if r := e.do(t, pki.RoleAuditor, "GET", "/api/v1/certificates?renewed=false&renewed=true", nil); r.status != 400 {
		t.Errorf("renewed given twice: %d %s, want 400", r.status, r.body)
	}
	r := e.do(t, pki.RoleAuditor, "GET", "/api/v1/certificates?renewed=false&limit=1", nil)
	var page struct {
		NextCursor string `json:"next_cursor"`
	}
	r.json(t, &page)
	if page.NextCursor == "" {
		t.Fatalf("renewed=false&limit=1: no next page\n%s", r.body)
	}
	for _, other := range []string{"", "renewed=true&"} {
		r := e.do(t, pki.RoleAuditor, "GET", "/api/v1/certificates?"+other+"limit=1&cursor="+url.QueryEscape(page.NextCursor), nil)
		if r.status != 422 {
			t.Errorf("the cursor of renewed=false with %q: %d %s, want 422", other, r.status, r.body)
		}
	}
}
