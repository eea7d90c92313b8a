// Package muxpath matches a request path against the path of a net/http
// ServeMux pattern, for handlers that must tell "no such route" from "not
// this method" (405 with Allow) before the mux does.
package muxpath

import "strings"

// Matches reports whether path matches pattern's path: a {name} segment
// matches one non-empty segment, any other segment itself, and a trailing
// {$} ends the pattern.
func Matches(pattern, path string) bool {
	pattern = strings.TrimSuffix(pattern, "{$}")
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if strings.HasPrefix(ps[i], "{") {
			if xs[i] == "" {
				return false
			}
		} else if ps[i] != xs[i] {
			return false
		}
	}
	return true
}
