// SkiffRuntime module
