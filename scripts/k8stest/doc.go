// Package k8stest checks nsrun export kubernetes against a real API
// server (build tag k8s): scripts/k8s-test.sh builds the server and runs
// these tests. It is a module of its own, so that nsrun's own module does
// not depend on controller-runtime and client-go.
package k8stest
