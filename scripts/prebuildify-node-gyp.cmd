@rem prebuildify runs its --node-gyp through cmd.exe on Windows, which cannot start a .mjs file:
@rem scripts/pack-local.mjs passes this on win32, and it runs the Node script.
@node "%~dp0prebuildify-node-gyp.mjs" %*
@exit /b %errorlevel%
