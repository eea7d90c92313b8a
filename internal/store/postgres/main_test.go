package postgres

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// migrated is a database every migration has been applied to, made once
// per test binary, of which openFresh gives each test a copy: a test that
// needs an empty store does not pay for the migrations again.
var migrated = pgtest.NewTemplate(func(ctx context.Context, dbURL string) error {
	s, err := Open(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	// Close waits for the pool's connections to close: the template is
	// copied only once no session is connected to it.
	s.Close()
	return nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	migrated.Drop()
	os.Exit(code)
}
