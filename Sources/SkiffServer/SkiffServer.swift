// SkiffServer module
