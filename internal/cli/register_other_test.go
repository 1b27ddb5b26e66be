//go:build !linux

package cli

// The registering client of server_socket_e2e_test.go (Linux only): on
// other systems the test binary is never started as one.
const envRegister = "FLOWCTL_TEST_REGISTER"

func registerOnce(string) int { return 2 }
