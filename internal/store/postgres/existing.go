package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scepter/scepter/internal/store/migrate"
)

// ErrNotInitialized is returned by OpenExisting for a database that no
// scepter has migrated yet.
var ErrNotInitialized = errors.New("no scepter schema in this database")

// OpenExisting is Open for a database a scepter server has already set up:
// a database without scepter's schema is refused with an error wrapping
// ErrNotInitialized, and left as it is. Administrative commands use it, so
// that a mistyped database name does not quietly get an empty schema.
func OpenExisting(ctx context.Context, url string, opts ...migrate.Option) (*Store, error) {
	if err := checkUserinfo(url); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s, err := openExisting(ctx, url, opts...)
	return s, scrubSecrets(err, url)
}

// openExisting is OpenExisting once the URL's userinfo is known to be read
// alike by pgx and Redact.
func openExisting(ctx context.Context, url string, opts ...migrate.Option) (*Store, error) {
	name := Redact(url)
	// pgxpool's parser: it takes the pool_* parameters out of the URL,
	// which pgx alone would send to the server as settings.
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, pgError("%s: %w", openLabel(name), parseFailure(url, err))
	}
	cfg := pcfg.ConnConfig
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, pgError("%s: %w", openLabel(name), err)
	}
	var exists bool
	err = conn.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists)
	conn.Close(ctx)
	if err != nil {
		return nil, pgError("%s: %w", openLabel(name), err)
	}
	if !exists {
		return nil, pgError("%s: %w", openLabel(name), ErrNotInitialized)
	}
	return open(ctx, url, opts...)
}
