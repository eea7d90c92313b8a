package sqlstore

import (
	"encoding/json"
	"fmt"
	"time"
)

// Times are stored as integer microseconds since the Unix epoch, UTC
// (INTEGER in SQLite, BIGINT in PostgreSQL; see sqlite's
// migrations/0001_init.sql for why). The zero time.Time is stored as its
// own microsecond count in NOT NULL columns and as NULL in nullable ones;
// both read back as the zero time.

// Micros is t as stored.
func Micros(t time.Time) int64 { return t.UnixMicro() }

// NullMicros is t as stored in a nullable column: NULL for the zero time.
func NullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// FromMicros reads a stored time.
func FromMicros(us int64) time.Time {
	t := time.UnixMicro(us).UTC()
	if t.IsZero() {
		return time.Time{}
	}
	return t
}

// FromNullMicros reads a stored time from a nullable column.
func FromNullMicros(v *int64) time.Time {
	if v == nil {
		return time.Time{}
	}
	return FromMicros(*v)
}

// ZeroMicros is t as stored where the zero time is 0 (a CA generation's
// switch time).
func ZeroMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return Micros(t)
}

// FromZeroMicros reads a time ZeroMicros stored.
func FromZeroMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return FromMicros(us)
}

// DurMicros is a duration (a notification threshold) as stored.
func DurMicros(d time.Duration) int64 { return d.Microseconds() }

// FromDurMicros reads a stored duration; NULL is 0.
func FromDurMicros(us *int64) time.Duration {
	if us == nil {
		return 0
	}
	return time.Duration(*us) * time.Microsecond
}

// NullBytes stores an empty blob as NULL.
func NullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// NullInt reads a nullable integer column; NULL is 0.
func NullInt(v *int64) int {
	if v == nil {
		return 0
	}
	return int(*v)
}

// EncodeSANs stores a SAN list as a JSON array ("[]" for none).
func EncodeSANs(sans []string) (string, error) {
	if len(sans) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(sans)
	if err != nil {
		return "", fmt.Errorf("encode SANs: %w", err)
	}
	return string(b), nil
}

// DecodeSANs returns nil for an empty list, so a record reads back the same
// whether it was stored with nil or an empty slice.
func DecodeSANs(s string) ([]string, error) {
	var sans []string
	if err := json.Unmarshal([]byte(s), &sans); err != nil {
		return nil, fmt.Errorf("decode SANs: %w", err)
	}
	if len(sans) == 0 {
		return nil, nil
	}
	return sans, nil
}
