package tlsutil

import (
	"google.golang.org/grpc"

	"github.com/flowctl/flowctl/pkg/wire/wiretls"
)

// TokenServerOptions returns the gRPC server options that install
// TokenUnaryInterceptor and TokenStreamInterceptor (chained, so other
// interceptors still run). Methods listed in exempt (full names such as
// "/grpc.health.v1.Health/Check") are let through without a token.
func TokenServerOptions(token string, exempt ...string) []grpc.ServerOption {
	return wiretls.TokenServerOptions(token, exempt...)
}

// TokenUnaryInterceptor refuses unary calls whose metadata lacks
// `authorization: Bearer <token>` with codes.Unauthenticated. The digests
// are compared in constant time (pkg/wire/wiretls, which the SDK shares).
func TokenUnaryInterceptor(token string, exempt ...string) grpc.UnaryServerInterceptor {
	return wiretls.TokenUnaryInterceptor(token, exempt...)
}

// TokenStreamInterceptor is TokenUnaryInterceptor for streaming calls.
func TokenStreamInterceptor(token string, exempt ...string) grpc.StreamServerInterceptor {
	return wiretls.TokenStreamInterceptor(token, exempt...)
}
