package postgres

import "context"

// caSetupLockKey is the pg_advisory_lock key of LockCASetup (beside
// migrationLockKey).
const caSetupLockKey int64 = 0x5ce9_7e12_0000_0002

// LockCASetup takes a session-level advisory lock that nodes hold while
// they look whether the store records a CA, create one when it does not,
// and record it: so that two nodes starting together on an empty database
// do not both create a CA. It waits for the node holding it (or until ctx
// ends). unlock releases it; it may be called more than once.
func (s *Store) LockCASetup(ctx context.Context) (unlock func(), err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, pgError("postgres: %s: taking the CA setup lock: %w", s.name, err)
	}
	// The node holding it may take longer than a write waits for a lock
	// (DefaultLockTimeout) to create the CA: wait for it as long as ctx
	// lets. The unlock resets the setting before the pool has it back.
	_, err = conn.Exec(ctx, `SET lock_timeout = 0`)
	if err == nil {
		_, err = conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, caSetupLockKey)
	}
	if err != nil {
		// The connection may be in any state: close it rather than
		// return it to the pool.
		conn.Hijack().Close(context.Background())
		return nil, pgError("postgres: %s: taking the CA setup lock: %w", s.name, err)
	}
	done := false
	return func() {
		if done {
			return
		}
		done = true
		var released bool
		if err := conn.QueryRow(context.Background(), `SELECT pg_advisory_unlock($1)`, caSetupLockKey).Scan(&released); err != nil || !released {
			// Closing the session drops the lock with it.
			conn.Hijack().Close(context.Background())
			return
		}
		if _, err := conn.Exec(context.Background(), `SELECT set_config('lock_timeout', $1, false)`, s.lockTimeout); err != nil {
			conn.Hijack().Close(context.Background())
			return
		}
		conn.Release()
	}, nil
}
