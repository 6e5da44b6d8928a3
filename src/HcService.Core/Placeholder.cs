namespace HcService.Core;
internal static class Placeholder { }
