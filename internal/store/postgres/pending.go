package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// Unmigrated is what Pending reads of a database whose schema is older
// than this binary's.
type Unmigrated struct {
	// SchemaVersion is the newest migration the database records, Latest
	// this binary's.
	SchemaVersion, Latest int
	// NewestCRLs is the number of each issuer's newest CRL, by issuer ID.
	NewestCRLs map[string]int64
}

// Pending reads the database at url as it is, before Open would migrate
// it, and without changing it (no migration lock either: it only reads):
// nil when its schema is current or it has none yet (a new database,
// nothing in it to check). A start that is going to be refused checks with
// it first, so that its refusal leaves the schema an older scepter can
// still open, as sqlite.Pending does for SQLite. A schema newer than this
// binary's wraps migrate.ErrDatabaseTooNew, as Open's does; the
// password never appears in its errors.
func Pending(ctx context.Context, url string) (*Unmigrated, error) {
	if err := checkUserinfo(url); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	u, err := pending(ctx, url)
	return u, scrubSecrets(err, url)
}

func pending(ctx context.Context, url string) (*Unmigrated, error) {
	name := Redact(url)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, pgError("%s: %w", openLabel(name), parseFailure(url, err))
	}
	cc := cfg.ConnConfig
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = DefaultConnectTimeout
	}
	db := stdlib.OpenDB(*cc.Copy())
	defer db.Close()
	db.SetMaxOpenConns(1)
	have, err := migrate.Check(ctx, db, Migrations(), dialect())
	var old *migrate.TooOldError
	switch {
	case errors.As(err, &old):
	case err != nil:
		return nil, pgError("%s: %w", openLabel(name), err)
	default:
		return nil, nil
	}
	if have == 0 {
		return nil, nil // a new database: nothing in it to check
	}
	crls, err := sqlstore.NewestCRLs(ctx, db, hasTable)
	if err != nil {
		return nil, pgError("%s: the newest CRLs: %w", openLabel(name), err)
	}
	return &Unmigrated{SchemaVersion: old.Have, Latest: old.Want, NewestCRLs: crls}, nil
}
