package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// Times are stored as INTEGER microseconds since the Unix epoch, UTC (see
// migrations/0001_init.sql for why). The zero time.Time is stored as its own
// microsecond count in NOT NULL columns and as NULL in nullable ones; both
// read back as the zero time.

func micros(t time.Time) int64 { return t.UnixMicro() }

func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	t := time.UnixMicro(us).UTC()
	if t.IsZero() {
		return time.Time{}
	}
	return t
}

func fromNullMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicros(v.Int64)
}

func encodeSANs(sans []string) (string, error) {
	if len(sans) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(sans)
	if err != nil {
		return "", fmt.Errorf("encode SANs: %w", err)
	}
	return string(b), nil
}

// decodeSANs returns nil for an empty list, so a record reads back the same
// whether it was stored with nil or an empty slice.
func decodeSANs(s string) ([]string, error) {
	var sans []string
	if err := json.Unmarshal([]byte(s), &sans); err != nil {
		return nil, fmt.Errorf("decode SANs: %w", err)
	}
	if len(sans) == 0 {
		return nil, nil
	}
	return sans, nil
}
