package main

import (
	"context"
	"math"
	"net/http"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
)

// errorHandler answers as grpc-gateway's default does (the HTTP status of the gRPC code,
// per google.rpc, and the google.rpc.Status as JSON), and adds Retry-After where the
// service said when to retry (a google.rpc.RetryInfo detail, as overload refusals carry).
func errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if s, ok := status.FromError(err); ok {
		for _, detail := range s.Details() {
			if info, ok := detail.(*errdetails.RetryInfo); ok && info.GetRetryDelay() != nil {
				seconds := math.Ceil(info.GetRetryDelay().AsDuration().Seconds())
				w.Header().Set("Retry-After", strconv.Itoa(int(max(seconds, 1))))
			}
		}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}
