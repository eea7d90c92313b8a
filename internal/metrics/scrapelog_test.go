package metrics

import (
	"bytes"
	"errors"
	stdlog "log"
	"strings"
	"testing"
)

// A scraper that goes away mid-answer writes nothing to the log; a
// collector that fails still does.
func TestScrapeLog(t *testing.T) {
	var buf bytes.Buffer
	l := scrapeLog{stdlog.New(&buf, "", 0)}
	l.Println(sendFailed, errors.New("write tcp 127.0.0.1:9090->127.0.0.1:41234: write: broken pipe"))
	if buf.Len() != 0 {
		t.Errorf("an aborted scrape logged %q", buf.String())
	}
	l.Println("error gathering metrics:", errors.New("store: unavailable"))
	if !strings.Contains(buf.String(), "error gathering metrics: store: unavailable") {
		t.Errorf("a failing collector logged %q", buf.String())
	}
}
