# Sourced by scripts/patch-fuse-native.sh and scripts/build-native.sh: defines gyp_rebuild DIR,
# which runs `node-gyp rebuild` in DIR quietly. node-gyp: the one npm names to its lifecycle
# scripts, else npm's bundled copy, else one on PATH; it builds offline against Node's local
# headers (npm's nodedir, else the headers installed beside this node), and downloads them only
# when neither exists.
gyp_rebuild() {
  _gyp=""
  _npm_root=$(npm prefix -g 2>/dev/null || true)
  if [ -n "${npm_config_node_gyp:-}" ] && [ -f "$npm_config_node_gyp" ]; then
    _gyp="node $npm_config_node_gyp"
  elif [ -n "$_npm_root" ] && [ -f "$_npm_root/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js" ]; then
    _gyp="node $_npm_root/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
  elif command -v node-gyp >/dev/null 2>&1; then
    _gyp=node-gyp
  else
    _gyp="npx --no-install node-gyp"
  fi
  _nodedir=${npm_config_nodedir:-$(npm config get nodedir 2>/dev/null || true)}
  if [ -z "$_nodedir" ] || [ "$_nodedir" = "undefined" ] || [ "$_nodedir" = "null" ]; then
    _nodedir=$(node -p "require('path').resolve(process.execPath, '../..')")
    [ -f "$_nodedir/include/node/node.h" ] || _nodedir=""
  fi
  if [ -n "$_nodedir" ]; then
    (cd "$1" && $_gyp rebuild --loglevel=error --nodedir="$_nodedir" >/dev/null)
  else
    (cd "$1" && $_gyp rebuild --loglevel=error >/dev/null)
  fi
}
