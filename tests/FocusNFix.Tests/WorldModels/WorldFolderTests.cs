using FocusNFix.ShapesWorld;
using FocusNFix.WorldModels;
using Xunit;

namespace FocusNFix.Tests.WorldModels;

public class WorldFolderTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-world-folder-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void AModelsWorldIsTheWorldJsonInItsParentFolder()
    {
        Assert.Equal(Path.Combine(_dir, "world.json"), WorldFolder.WorldBeside(Path.Combine(_dir, "base")));
        Assert.Equal(Path.Combine(_dir, "world.json"), WorldFolder.WorldBeside(Path.Combine(_dir, "base") + "/"));
    }

    [Fact]
    public void TheWorldBesideIsAddedWhenAbsentKeptWhenTheSameAndADifferentOneIsRefused()
    {
        var model = Path.Combine(_dir, "base");
        var world = WorldSpec.Default(32);
        Assert.True(WorldFolder.CheckWorldBeside(model, world));
        WorldFolder.WriteWorldBeside(model, world);
        Assert.Equal(world, WorldSpec.Load(Path.Combine(_dir, "world.json")));
        Assert.False(WorldFolder.CheckWorldBeside(model, world));

        var other = WorldSpec.Default(48);
        var e = Assert.Throws<InvalidInputException>(() => WorldFolder.CheckWorldBeside(model, other));
        Assert.Contains(Path.Combine(_dir, "world.json"), e.Message);
        WorldFolder.WriteWorldBeside(model, other);  // never replaces one
        Assert.Equal(world, WorldSpec.Load(Path.Combine(_dir, "world.json")));
    }
}
