package main

import "github.com/scepter/scepter/internal/filetrust"

// shellQuote writes s as one word of a POSIX shell command line, for the
// commands the CLI and serve suggest (filetrust.ShellQuote).
func shellQuote(s string) string { return filetrust.ShellQuote(s) }
