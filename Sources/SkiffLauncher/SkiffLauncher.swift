// SkiffLauncher module
