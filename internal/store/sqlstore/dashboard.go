package sqlstore

import (
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
}

// NewDashboard starts the dashboard at now with the last days days (1 to
// 366), every count zero.
func NewDashboard(now time.Time, days int) *Dashboard {
	d := &Dashboard{Dashboard: store.Dashboard{
		ByStatus:  map[string]int64{"valid": 0, "expired": 0, "revoked": 0},
		ByProfile: map[string]int64{},
		Expiring:  map[int]int64{7: 0, 30: 0, 90: 0},
	}}
	d.Today = Micros(now) / dayMicros
	days = min(max(days, 1), 366)
	d.First = d.Today - int64(days) + 1
	for i := range int64(days) {
		d.Days = append(d.Days, store.DayCount{Day: FromMicros((d.First + i) * dayMicros)})
	}
	return d
}

// AddCertificates counts a certificate_counts row: n certificates of a
// profile and status expiring on day expiry.
func (d *Dashboard) AddCertificates(profile, status string, expiry, n int64) {
	switch {
	case status == string(pki.StatusRevoked):
		d.ByStatus["revoked"] += n
	case expiry < d.Today:
		d.ByStatus["expired"] += n
	default:
		d.ByStatus["valid"] += n
		d.ByProfile[profile] += n
		for _, within := range []int{7, 30, 90} {
			if expiry <= d.Today+int64(within) {
				d.Expiring[within] += n
			}
		}
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
