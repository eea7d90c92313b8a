package main

import "strings"

// shellQuote writes s as one word of a POSIX shell command line, for the
// commands the CLI and serve suggest: pasted, a data directory named
// "sp ace/d" must not become two arguments. A word of safe characters
// only is written as it is, anything else in single quotes, closed
// before a single quote within, which is escaped with a backslash, and
// opened again after it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, shellSafe) == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellSafe are the characters no POSIX shell gives a meaning to in an
// argument ('~' is left out: a shell expands it at a word's start).
const shellSafe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=:,./@%"
