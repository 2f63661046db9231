# cmake -DIN=<etcd .proto> -DOUT=<file> -P StripEtcdProto.cmake
# Debian's etcd .proto files carry options for Go's gogoproto and for the
# HTTP gateway; both need .proto files of their own and mean nothing to C++.
# This drops those imports and options and keeps every message, field and
# service as etcd has them.
file(READ "${IN}" text)
string(REGEX REPLACE "import \"(gogoproto/gogo|google/api/annotations)\\.proto\";\n" "" text "${text}")
string(REGEX REPLACE "option \\(gogoproto\\.[a-z_]+\\) = [a-z]+;\n" "" text "${text}")
# An http option may nest one level (additional_bindings { ... }).
string(REGEX REPLACE
       "\\{[ \t\n]*option \\(google\\.api\\.http\\) = \\{([^{}]|\\{[^{}]*\\})*\\};[ \t\n]*\\}" "{}"
       text "${text}")
if(text MATCHES "gogoproto|google\\.api")
  message(FATAL_ERROR "${IN}: an option this script does not know how to strip is left")
endif()
file(WRITE "${OUT}" "${text}")
