package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/client"
)

// pprofPath is where Go's net/http/pprof serves its pages; a server's
// --pprof-listen address serves them there.
const pprofPath = "/debug/pprof/"

// checkProfiling asks the profiling endpoints at base for their index, so
// that a wrong address fails before the pool is built and the run made, not
// after. An endpoint that does not answer within timeout (--timeout, as
// for an enrollment) is given up on, and the error says so.
func checkProfiling(ctx context.Context, base string, timeout time.Duration) error {
	u, err := pprofURL(base, "")
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = getProfiling(cctx, u.String(), io.Discard, " (not a server's --pprof-listen?)")
	if err != nil && ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
		// Go's bare "context deadline exceeded" names neither the wait
		// nor what bounded it.
		return fmt.Errorf("server profile: the server's --pprof-listen endpoint %s gave no answer within --timeout %s; no run was made",
			client.RedactURL(u.String()), timeout)
	}
	return err
}

// CheckServerProfileURL refuses a --server-profile that is no http:// or
// https:// URL with a host and a port from 1 to 65535, before anything is
// sent (a usage error, as a malformed --url is).
func CheckServerProfileURL(base string) error {
	_, err := pprofURL(base, "")
	return err
}

// pprofURL is the URL of page (its index for "") of the profiling
// endpoints at base: http://HOST:PORT, with or without /debug/pprof/ or a
// page's name after it.
func pprofURL(base, page string) (*url.URL, error) {
	u, err := url.Parse(base)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which it quotes whole
		}
		return nil, fmt.Errorf("server profile: %q cannot be read as a URL: %v", client.RedactURL(base), err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server profile: %q is not an http:// URL of a server's profiling endpoints", client.RedactURL(base))
	}
	if err := checkPort(u); err != nil {
		return nil, fmt.Errorf("server profile: %q: %w", client.RedactURL(base), err)
	}
	p, _, _ := strings.Cut(u.Path, pprofPath)
	u.Path = strings.TrimSuffix(strings.TrimRight(p, "/"), "/debug/pprof") + pprofPath + page
	u.RawQuery = ""
	return u, nil
}

// profileURL is the CPU-profile URL of the profiling endpoints at base for
// a profile of d, rounded up to whole seconds as the endpoint takes them.
func profileURL(base string, d time.Duration) (string, error) {
	u, err := pprofURL(base, "profile")
	if err != nil {
		return "", err
	}
	u.RawQuery = "seconds=" + strconv.FormatInt(int64(profileSeconds(d)/time.Second), 10)
	return u.String(), nil
}

// profileSeconds is the window of a profile asked for d: whole seconds,
// rounded up, at least one.
func profileSeconds(d time.Duration) time.Duration {
	return time.Duration(max(int64(math.Ceil(d.Seconds())), 1)) * time.Second
}

// fetchProfile asks the server at base for a CPU profile of d and copies it
// to out. The endpoint answers when the profile ends, so this returns about
// d after it was called (or when ctx ends); a server that has not answered
// timeout after the profile's window is given up on, as an enrollment is
// after --timeout.
func fetchProfile(ctx context.Context, base string, d, timeout time.Duration, out io.Writer) error {
	u, err := profileURL(base, d)
	if err != nil {
		return err
	}
	window := profileSeconds(d)
	pctx, cancel := context.WithTimeout(ctx, window+timeout)
	defer cancel()
	err = getProfiling(pctx, u, out, "")
	if err != nil && ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("server profile: %s: no profile within --timeout %s after its %s window (the server's profiling endpoint stalled)",
			client.RedactURL(u), timeout, window)
	}
	return err
}

// getProfiling GETs u from the profiling endpoints and copies a 200
// answer's body to out; any other answer is an error naming u, its status,
// the start of its body and hint.
func getProfiling(ctx context.Context, u string, out io.Writer, hint string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("server profile: %w", err)
	}
	// No redirect is followed here either (newHTTPClient): a 3xx names
	// where it pointed, and the tool talks only to the server it was given.
	resp, err := newHTTPClient(http.DefaultTransport).Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			// net/http masks a password as ***; every other message of
			// the tool says xxxxx.
			return fmt.Errorf("server profile: %s %s: %w%s", ue.Op, client.RedactURL(u), ue.Err, hint)
		}
		return fmt.Errorf("server profile: %w%s", err, hint)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("server profile: %s answered %s: %s%s", client.RedactURL(u), resp.Status, strings.TrimSpace(string(msg)), hint)
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		return fmt.Errorf("server profile: reading %s: %w", client.RedactURL(u), err)
	}
	return nil
}
