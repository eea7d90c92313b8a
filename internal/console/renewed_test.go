package console_test

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/console"
)

// inventoryRow is what a test reads of a row of the inventory: the
// certificate's serial (store form, from its link) and the serial its
// "renewed" mark links to, "" for none.
type inventoryRow struct{ serial, renewal string }

var (
	rowCertLink    = regexp.MustCompile(`class="cert-link" href="/ui/certificates/([0-9a-f]+)\?`)
	rowRenewalLink = regexp.MustCompile(`class="badge badge-renewed" href="/ui/certificates/([0-9a-f]+)\?`)
)

func inventoryRows(t *testing.T, body string) []inventoryRow {
	t.Helper()
	_, tbody, _ := strings.Cut(body, "<tbody>")
	tbody, _, _ = strings.Cut(tbody, "</tbody>")
	var rows []inventoryRow
	for _, tr := range strings.Split(tbody, "<tr>")[1:] {
		m := rowCertLink.FindStringSubmatch(tr)
		if m == nil {
			t.Fatalf("a row without its certificate's link:\n%s", tr)
		}
		r := inventoryRow{serial: m[1]}
		if m := rowRenewalLink.FindStringSubmatch(tr); m != nil {
			r.renewal = m[1]
		}
		rows = append(rows, r)
	}
	return rows
}

// The inventory marks a certificate a renewal replaced, linking to the
// newest renewal, and its "Renewed" filter leaves such certificates out
// (or keeps them alone), with "expiring within" and the other filters,
// kept in the next page's link and shown selected.
func TestInventoryMarksRenewed(t *testing.T) {
	e := newEnv(t, console.Options{})
	a := e.issue("inv-renew-a")
	keep := e.issue("inv-renew-keep")
	// Inside the renewal window (the last third of a year's lifetime).
	e.pki.Clock.Advance(300 * 24 * time.Hour)
	a2, _ := e.pki.Renew(t, a, "inv-renew-a")
	sa, skeep, sa2 := a.SerialNumber.Text(16), keep.SerialNumber.Text(16), a2.SerialNumber.Text(16)
	renewedA := inventoryRow{sa, sa2}
	b := e.as("auditor")
	for _, tc := range []struct {
		query string
		want  []inventoryRow
	}{
		{"", []inventoryRow{{sa2, ""}, {skeep, ""}, renewedA}},
		{"expiring=90", []inventoryRow{renewedA, {skeep, ""}}},
		{"expiring=90&renewed=false", []inventoryRow{{skeep, ""}}},
		{"expiring=90&renewed=true", []inventoryRow{renewedA}},
		{"sort=expiring&renewed=false", []inventoryRow{{skeep, ""}, {sa2, ""}}},
		{"renewed=true&status=valid&q=inv-renew", []inventoryRow{renewedA}},
		{"renewed=false&protocol=scep", []inventoryRow{{sa2, ""}}},
	} {
		res := b.get("/ui/certificates?" + tc.query)
		expectStatus(t, tc.query, res, http.StatusOK)
		if got := inventoryRows(t, res.body); !slices.Equal(got, tc.want) {
			t.Errorf("%s: rows %+v, want %+v", tc.query, got, tc.want)
		}
		renewed := ""
		if _, v, ok := strings.Cut(tc.query, "renewed="); ok {
			renewed, _, _ = strings.Cut(v, "&")
		}
		if renewed != "" {
			expectBody(t, tc.query, res, `<option value="`+renewed+`" selected>`)
		} else {
			expectBody(t, tc.query, res, `<option value="">renewed or not</option>`)
		}
	}
	// The filter goes on to the next page.
	first := b.get("/ui/certificates?renewed=false&limit=1")
	expectStatus(t, "renewed=false&limit=1", first, http.StatusOK)
	next := href(t, first.body, "next-page")
	if !strings.Contains(next, "renewed=false") {
		t.Errorf("the next page of renewed=false is %s, without the filter", next)
	}
	second := b.get(next)
	expectStatus(t, "the next page", second, http.StatusOK)
	if got := inventoryRows(t, second.body); !slices.Equal(got, []inventoryRow{{skeep, ""}}) {
		t.Errorf("the next page of renewed=false: rows %+v, want the one not renewed", got)
	}
	// A value that is neither is refused naming the filter, as the API
	// refuses it.
	bad := b.get("/ui/certificates?renewed=maybe")
	expectStatus(t, "renewed=maybe", bad, http.StatusUnprocessableEntity)
	expectBody(t, "renewed=maybe", bad, "renewed &#34;maybe&#34;: want false")
}
