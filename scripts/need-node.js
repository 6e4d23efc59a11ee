// Runs before `npm start` and `npm test`, on whatever Node.js npm found: plain JavaScript, so that
// an old Node.js reads it. Mikrom's code is TypeScript run by Node.js 24, which `npm ci` installs
// from package.json's optionalDependencies, one build per platform. Where none matched (another OS
// or CPU, or an install without optional packages), the machine's Node.js runs instead, and one
// older than 24 would fail on the first .ts file with ERR_UNKNOWN_FILE_EXTENSION: say what to do.
const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  const platform = `${process.platform}-${process.arch}`;
  const builds = ["linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64"];
  const why = builds.includes(platform)
    ? `npm did not install Node.js 24 for ${platform} (was it installed without optional packages?): run npm ci`
    : `there is no Node.js 24 package for ${platform} (only ${builds.join(", ")}): install Node.js 24 and run the command again`;
  process.stderr.write(`Mikrom needs Node.js 24 and this is Node.js ${process.versions.node}: ${why}\n`);
  process.exit(1);
}
