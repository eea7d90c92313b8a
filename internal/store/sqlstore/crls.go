package sqlstore

import (
	"context"
	"database/sql"
)

// NewestCRLs is the number of each issuer's newest CRL, by issuer ID, read
// from a store's crls table without opening the store: the checks that
// refuse a store behind this node's CRL marks before it is migrated or
// restored, in either dialect. hasCRLs says whether the table exists (a
// schema before version 6 kept no CRLs): none then.
func NewestCRLs(ctx context.Context, db *sql.DB, hasCRLs func(context.Context, *sql.DB, string) (bool, error)) (map[string]int64, error) {
	out := map[string]int64{}
	if ok, err := hasCRLs(ctx, db, "crls"); err != nil || !ok {
		return out, err
	}
	rows, err := db.QueryContext(ctx, `SELECT issuer_id, max(number) FROM crls GROUP BY issuer_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		out[id] = n
	}
	return out, rows.Err()
}
