#!/usr/bin/env bash
# The layers' boundaries, checked instead of trusted: every UCX name in
# daemon/ucx (elsewhere only its opaque ids: daemon/ucx/ids.h), and every
# gRPC server detail in daemon/rpc.
#   check_layers.sh REPO
set -uo pipefail
repo=$1
cd "$repo" || exit 1
status=0
ucx=$(grep -rnE '\b(ucp|ucs|uct)_[a-z_]+' daemon --include='*.h' --include='*.cc' |
  grep -v '^daemon/ucx/')
if [[ -n $ucx ]]; then
  echo "UCX names outside daemon/ucx:"
  echo "$ucx"
  status=1
fi
grpc=$(grep -rnE 'grpc::(Server|ServerBuilder|ServerContext|ServerUnaryReactor|CallbackServerContext)\b|#include <grpcpp/(server|server_builder|server_context)\.h>' \
  daemon --include='*.h' --include='*.cc' | grep -v '^daemon/rpc/')
if [[ -n $grpc ]]; then
  echo "gRPC server details outside daemon/rpc:"
  echo "$grpc"
  status=1
fi
[[ $status == 0 ]] && echo "check_layers: UCX in daemon/ucx, gRPC servers in daemon/rpc"
exit $status
