package sqlstore

import (
	"strconv"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// dayMicros is a UTC day: the counter tables key days by micros/dayMicros.
const dayMicros = int64(24 * time.Hour / time.Microsecond)

// Dashboard is a store.Dashboard being summed up from the rows of the
// counter tables (certificate_counts, daily_counts).
type Dashboard struct {
	store.Dashboard
	// Today and First are day numbers: now's, and that of Days[0]. The
	// daily_counts query reads First to Today.
	Today, First int64
	// Now is the time of the reading: EdgeQuery splits the day buckets
	// it falls in (today's, and each "expiring within" window's last).
	Now time.Time
}

// expiringWithin are the dashboard's "expiring within" windows, in days.
var expiringWithin = [...]int{7, 30, 90}

// NewDashboard starts the dashboard at now with the last days days (1 to
// 366), every count zero.
func NewDashboard(now time.Time, days int) *Dashboard {
	d := &Dashboard{Dashboard: store.Dashboard{
		ByStatus:  map[string]int64{"valid": 0, "expired": 0, "revoked": 0},
		ByProfile: map[string]int64{},
		Expiring:  map[int]int64{7: 0, 30: 0, 90: 0},
	}, Now: now}
	d.Today = Micros(now) / dayMicros
	days = min(max(days, 1), 366)
	d.First = d.Today - int64(days) + 1
	for i := range int64(days) {
		d.Days = append(d.Days, store.DayCount{Day: FromMicros((d.First + i) * dayMicros)})
	}
	return d
}

// AddCertificates counts a certificate_counts row: n certificates of a
// profile and status expiring on day expiry. It counts by whole UTC days:
// AddEdge then moves what EdgeQuery finds on the days now splits.
func (d *Dashboard) AddCertificates(profile, status string, expiry, n int64) {
	switch {
	case status == string(pki.StatusRevoked):
		d.ByStatus["revoked"] += n
	case expiry < d.Today:
		d.ByStatus["expired"] += n
	default:
		d.ByStatus["valid"] += n
		d.ByProfile[profile] += n
		for _, within := range expiringWithin {
			if expiry <= d.Today+int64(within) {
				d.Expiring[within] += n
			}
		}
	}
}

// EdgeQuery counts the valid certificates (not the server's own, as
// certificate_counts) that AddCertificates files on the wrong side of
// now, so that the counts say what the inventory's lists say at now:
// those that expired earlier today, by profile (rows of within 0), and
// for each "expiring within" window those of its last day that expire
// after its end (rows of that window, with an empty profile). Each part is a range
// of the (status, not_after) index within one day, so it reads no more
// than a day's expiries, however large the inventory.
func (d *Dashboard) EdgeQuery(a *Args) string {
	part := func(from, to time.Time) string {
		return ` FROM certificates WHERE status = ` + a.Add(string(pki.StatusValid)) + ` AND not_after >= ` + a.Add(Micros(from)) +
			` AND not_after < ` + a.Add(Micros(to)) + ` AND protocol <> ` + a.Add(string(pki.ProtocolInternal))
	}
	day := func(n int64) time.Time { return FromMicros(n * dayMicros) }
	q := `SELECT profile, 0, count(*)` + part(day(d.Today), d.Now) + ` GROUP BY profile`
	for _, within := range expiringWithin {
		end := d.Now.Add(time.Duration(within) * 24 * time.Hour)
		q += ` UNION ALL SELECT '', ` + strconv.Itoa(within) + `, count(*)` + part(end, day(d.Today+int64(within)+1))
	}
	return q
}

// AddEdge counts an EdgeQuery row: n valid certificates of profile that
// expired today before now (within 0), or that expire on the last day of
// the window within but after its end.
func (d *Dashboard) AddEdge(profile string, within int, n int64) {
	if n == 0 {
		return
	}
	if within != 0 {
		d.Expiring[within] -= n
		return
	}
	d.ByStatus["valid"] -= n
	d.ByStatus["expired"] += n
	for _, w := range expiringWithin {
		d.Expiring[w] -= n
	}
	// As a profile whose certificates expired before today, one whose
	// last expired earlier today has no valid certificates to show.
	if d.ByProfile[profile] -= n; d.ByProfile[profile] <= 0 {
		delete(d.ByProfile, profile)
	}
}

// AddDay counts a daily_counts row; days outside Days are ignored.
func (d *Dashboard) AddDay(day int64, kind string, n int64) {
	if day < d.First || day > d.Today {
		return
	}
	dc := &d.Days[day-d.First]
	switch kind {
	case "issued":
		dc.Issued += n
	case "renewed":
		dc.Renewed += n
	case "revoked":
		dc.Revoked += n
	case "refused":
		dc.Refused += n
	}
}
