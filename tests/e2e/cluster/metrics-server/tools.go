//go:build tools

// Package tools pins the metrics-server main package built by ../build-k8s.sh so that
// `go mod tidy` keeps it.
package tools

import (
	_ "sigs.k8s.io/metrics-server/cmd/metrics-server"
)
