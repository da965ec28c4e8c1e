#!/bin/sh
# The `zone` command: runs cli/zone.ts with the project's TypeScript loader, from any folder.
dir=$(dirname "$(readlink -f "$0")")
exec node --import "$dir/../node_modules/tsx/dist/loader.mjs" "$dir/zone.ts" "$@"
