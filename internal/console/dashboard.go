package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/scepter/scepter/internal/ops"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// dashboardPage is the first page: what happened over the last days, what
// the inventory holds, what is about to expire, what waits for approval.
type dashboardPage struct {
	Days    int
	Choices []int
	Chart   chart
	Table   []store.DayCount
	// Totals over the days shown, by series.
	Totals    map[string]int64
	ByStatus  []bar
	ByProfile []bar
	Expiring  []expiring
	Pending   int
	// PendingMore says the pending count is a lower bound.
	PendingMore bool
	// OwnLeftOut says a count leaves out some of the server's own
	// certificates that its list holds; OwnLink lists them all.
	OwnLeftOut bool
	OwnLink    string
}

// bar is one row of a count table, with its bar's width (0-100).
type bar struct {
	Label string
	Count int64
	Width float64
	Link  string
	own
}

type expiring struct {
	Days  int
	Count int64
	Link  string
	own
}

// own counts the server's own certificates (SCEP RA, OCSP responder,
// HTTPS) in the list a count links to: the store's counters leave them out
// (as the metrics do), the list does not, so the page says how many more
// the list holds and marks them there.
type own struct {
	Own int
	// OwnMore says Own is a lower bound (a full page of them).
	OwnMore bool
}

// dashboard shows ops.Dashboard for ?days= (default 30).
func (h *Handler) dashboard(w http.ResponseWriter, r *http.Request, rq *req) error {
	days := 30
	if s := r.URL.Query().Get("days"); s != "" {
		n, ok := decimal(s)
		if !ok || n < 1 || n > 366 {
			return refusef("days %q: want a number from 1 to 366", clip(s))
		}
		days = int(n)
	}
	d, pending, err := h.ops.Dashboard(r.Context(), rq.p, days)
	if err != nil {
		return err
	}
	pg := dashboardPage{Days: days, Choices: withChoice([]int{7, 30, 90, 365}, days), Chart: buildChart(d.Days), Table: d.Days,
		Pending: pending, PendingMore: pending >= 1000, Totals: map[string]int64{}}
	for _, dc := range d.Days {
		pg.Totals["issued"] += dc.Issued
		pg.Totals["renewed"] += dc.Renewed
		pg.Totals["revoked"] += dc.Revoked
		pg.Totals["refused"] += dc.Refused
	}
	for _, s := range []string{"valid", "expired", "revoked"} {
		q := url.Values{"status": {s}}
		o, err := h.ownIn(r, rq, q)
		if err != nil {
			return err
		}
		pg.ByStatus = append(pg.ByStatus, bar{Label: s, Count: d.ByStatus[s], Link: inventoryLink(q), own: o})
		pg.OwnLeftOut = pg.OwnLeftOut || o.Own > 0
	}
	for name, n := range d.ByProfile {
		pg.ByProfile = append(pg.ByProfile, bar{Label: name, Count: n, Link: inventoryLink(url.Values{"status": {"valid"}, "profile": {name}})})
	}
	sort.Slice(pg.ByProfile, func(i, j int) bool {
		a, b := pg.ByProfile[i], pg.ByProfile[j]
		return a.Count > b.Count || (a.Count == b.Count && a.Label < b.Label)
	})
	scaleBars(pg.ByStatus)
	scaleBars(pg.ByProfile)
	for _, n := range []int{7, 30, 90} {
		q := url.Values{"status": {"valid"}, "expiring": {strconv.Itoa(n)}}
		o, err := h.ownIn(r, rq, q)
		if err != nil {
			return err
		}
		pg.Expiring = append(pg.Expiring, expiring{Days: n, Count: d.Expiring[n], Link: inventoryLink(q), own: o})
		pg.OwnLeftOut = pg.OwnLeftOut || o.Own > 0
	}
	pg.OwnLink = inventoryLink(url.Values{"protocol": {string(pki.ProtocolInternal)}})
	h.render(w, http.StatusOK, "dashboard", h.newView(rq, "Dashboard", "dashboard", pg))
	return nil
}

// withChoice is a select's choices with the value shown among them, in
// order, so that the select names the period the page shows (?days=1 was
// shown with "7 days" selected) and sending its form again keeps it.
func withChoice(choices []int, v int) []int {
	if slices.Contains(choices, v) {
		return choices
	}
	out := append(slices.Clone(choices), v)
	slices.Sort(out)
	return out
}

func inventoryLink(q url.Values) string { return Prefix + "certificates?" + q.Encode() }

// ownIn counts the server's own certificates in the inventory list that
// the filter q opens: few (a handful per node), found by the protocol's
// index, one page at most.
func (h *Handler) ownIn(r *http.Request, rq *req, q url.Values) (own, error) {
	f := inventoryForm{Status: q.Get("status"), Expiring: q.Get("expiring"), Protocol: string(pki.ProtocolInternal), Limit: strconv.Itoa(ops.MaxPage)}
	cq, err := f.query()
	if err != nil {
		return own{}, fmt.Errorf("console: counting the server's own certificates: %w", err)
	}
	certs, next, err := h.ops.Certificates(r.Context(), rq.p, cq)
	if err != nil {
		return own{}, err
	}
	return own{Own: len(certs), OwnMore: next != ""}, nil
}

func scaleBars(bars []bar) {
	var top int64
	for _, b := range bars {
		top = max(top, b.Count)
	}
	for i := range bars {
		if top > 0 {
			bars[i].Width = float64(bars[i].Count) * 100 / float64(top)
		}
	}
}

// chart is a line chart of the four series per day, drawn by the template
// as inline SVG from these numbers (no script, no inline style).
type chart struct {
	Width, Height         float64
	Left, Top             float64
	PlotWidth, PlotHeight float64
	Bottom, Right         float64
	YTicks                []tick
	XTicks                []tick
	Series                []series
	// Draw is Series in drawing order: issued last, on top.
	Draw []series
	// Columns are invisible hover targets, one per day, with a tooltip.
	Columns []column
	// Dots says whether points are marked (few days).
	Dots bool
	// Summary is the chart's text description.
	Summary string
}

type tick struct {
	At    float64
	Label string
}

type series struct {
	Key, Name, Color, Dash string
	Points                 string
	Dots                   []point
}

type point struct{ X, Y float64 }

type column struct {
	X, Width float64
	Title    string
}

var seriesStyle = []struct{ key, name, color, dash string }{
	{"issued", "Issued", "#1d4ed8", ""},
	{"renewed", "Renewed", "#047857", "8 4"},
	{"revoked", "Revoked", "#b91c1c", "2 4"},
	{"refused", "Refused", "#6d28d9", "10 4 2 4"},
}

func dayValue(d store.DayCount, key string) int64 {
	switch key {
	case "issued":
		return d.Issued
	case "renewed":
		return d.Renewed
	case "revoked":
		return d.Revoked
	}
	return d.Refused
}

func buildChart(days []store.DayCount) chart {
	c := chart{Width: 760, Height: 260, Left: 48, Top: 12, Right: 12, Bottom: 36}
	c.PlotWidth, c.PlotHeight = c.Width-c.Left-c.Right, c.Height-c.Top-c.Bottom
	var top int64
	for _, d := range days {
		for _, s := range seriesStyle {
			top = max(top, dayValue(d, s.key))
		}
	}
	step := niceStep(top)
	ymax := step * 4
	for i := int64(0); i <= 4; i++ {
		c.YTicks = append(c.YTicks, tick{At: c.Top + c.PlotHeight - float64(i*step)*c.PlotHeight/float64(ymax), Label: strconv.FormatInt(i*step, 10)})
	}
	n := len(days)
	if n == 0 {
		c.Summary = "No days to show."
		return c
	}
	colW := c.PlotWidth / float64(n)
	x := func(i int) float64 { return c.Left + (float64(i)+0.5)*colW }
	y := func(v int64) float64 { return c.Top + c.PlotHeight - float64(v)*c.PlotHeight/float64(ymax) }
	c.Dots = n <= 31
	every := (n + 5) / 6
	for i, d := range days {
		if i%every == 0 || i == n-1 && (n-1)%every >= every/2 {
			c.XTicks = append(c.XTicks, tick{At: x(i), Label: d.Day.UTC().Format("Jan 2")})
		}
		c.Columns = append(c.Columns, column{X: c.Left + float64(i)*colW, Width: colW,
			Title: fmt.Sprintf("%s: %d issued, %d renewed, %d revoked, %d refused", d.Day.UTC().Format("2006-01-02"), d.Issued, d.Renewed, d.Revoked, d.Refused)})
	}
	var sum []string
	for _, st := range seriesStyle {
		s := series{Key: st.key, Name: st.name, Color: st.color, Dash: st.dash}
		var pts []string
		var total int64
		for i, d := range days {
			v := dayValue(d, st.key)
			total += v
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
			if c.Dots {
				s.Dots = append(s.Dots, point{X: x(i), Y: y(v)})
			}
		}
		s.Points = strings.Join(pts, " ")
		c.Series = append(c.Series, s)
		sum = append(sum, fmt.Sprintf("%d %s", total, strings.ToLower(st.name)))
	}
	for i := len(c.Series) - 1; i >= 0; i-- {
		c.Draw = append(c.Draw, c.Series[i])
	}
	c.Summary = fmt.Sprintf("From %s to %s: %s.", days[0].Day.UTC().Format("2006-01-02"), days[n-1].Day.UTC().Format("2006-01-02"), strings.Join(sum, ", "))
	return c
}

// niceStep is a round step (1, 2, 5 times a power of ten) such that four
// steps reach v.
func niceStep(v int64) int64 {
	if v <= 4 {
		return 1
	}
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if m*p*4 >= v {
				return m * p
			}
		}
	}
}
