package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// The start log names the notification webhook by scheme and host only:
// chat webhooks keep their secret in the path.
func TestNotifyWebhookURLPathNotLogged(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	profiles := map[string]pki.Profile{"default": pki.DefaultProfile()}
	f := notifyFlags{interval: time.Hour, webhookURL: "https://hooks.example.test/services/T000/B000/XXXXSECRETXXXX"}
	e, _, _ := testEnv(nil)
	chans, err := f.checkNotifier(e, profiles, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop, err := f.startNotifier(ctx, st, profiles, chans, pkitest.NewClock(time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)), log)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	stop()
	if out := buf.String(); strings.Contains(out, "XXXXSECRET") || !strings.Contains(out, "channels=https://hooks.example.test/…") {
		t.Errorf("log:\n%s", out)
	}
}
